import json

import pytest

from comet_cli.errors import DataError, InputError
from comet_cli.eval.tasks import (
    TASKS,
    EvalItem,
    load_task,
    read_leval,
    read_leval_exam,
    read_qmsum,
    split_options,
)


def test_registry_rows_are_complete():
    assert {"qmsum", "squality", "meeting_summ", "news_summ", "patent_summ",
            "natural_question", "multidoc_qa", "financial_qa", "legal_contract_qa",
            "coursera", "tpo", "sci_fi"} <= set(TASKS)
    for name, spec in TASKS.items():
        assert spec.name == name
        assert spec.metric in ("rouge", "f1", "mc", "em")
        assert spec.description and "\n" not in spec.description


@pytest.mark.data
@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_loads_real_items(shared_data, name):
    items = list(load_task(name, shared_data, limit=3))
    assert len(items) == 3
    for item in items:
        assert isinstance(item, EvalItem)
        assert item.task == name and item.metric == TASKS[name].metric
        assert item.document.strip() and item.question.strip()
        assert item.references and all(ref.strip() for ref in item.references)
        if item.metric == "mc":
            assert len(item.options) >= 2
            letters = "ABCD"[: len(item.options)]
            assert all(set(ref) <= set(letters) for ref in item.references)
    assert len({item.item_id for item in items}) == 3


@pytest.mark.data
def test_squality_has_four_references(shared_data):
    item = next(load_task("squality", shared_data))
    assert len(item.references) == 4
    assert item.question == "What is the plot of the story?"


@pytest.mark.data
def test_coursera_keeps_multiple_correct_letters(shared_data):
    items = list(load_task("coursera", shared_data))
    assert all(item.multi_answer for item in items)
    assert any(len(item.references[0]) > 1 for item in items)
    assert all(len(item.options) == 4 for item in items)


@pytest.mark.data
def test_sci_fi_is_true_false_by_the_story(shared_data):
    item = next(load_task("sci_fi", shared_data))
    assert item.options == ["True", "False"]
    # The first sci_fi output is "True [fact: False]": the story's world counts.
    assert item.references == ["A"]
    assert not item.question.startswith("1.")


@pytest.mark.data
def test_limit_counts_items_not_documents(shared_data):
    assert len(list(load_task("qmsum", shared_data, limit=5))) == 5
    assert list(load_task("qmsum", shared_data, limit=0)) == []


def test_unknown_task_suggests_and_lists():
    with pytest.raises(InputError) as err:
        load_task("qmsun", "/nowhere")
    message = str(err.value)
    assert "unknown task 'qmsun'" in message
    assert "did you mean 'qmsum'?" in message
    assert "coursera" in message and "\n" not in message


def test_missing_data_dir_names_the_path(tmp_path):
    missing = tmp_path / "absent"
    with pytest.raises(DataError, match="absent"):
        load_task("qmsum", missing)
    with pytest.raises(DataError, match="test.jsonl"):
        load_task("qmsum", tmp_path)


def _leval_row(question="q?", answer="ref"):
    return json.dumps({"input": "a long document", "instructions": [question],
                       "outputs": [answer], "source": "x", "evaluation": "f1"})


def test_malformed_line_reports_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(_leval_row() + "\n\n" + '{"input": "doc", "instr\n')
    items = read_leval(path, task="natural_question", metric="f1")
    assert next(items).references == ["ref"]
    with pytest.raises(DataError, match=r"bad\.jsonl:3: invalid JSON"):
        next(items)


def test_missing_key_and_mismatch_report_line(tmp_path):
    path = tmp_path / "keys.jsonl"
    path.write_text(json.dumps({"instructions": [], "outputs": []}) + "\n")
    with pytest.raises(DataError, match=r"keys\.jsonl:1: missing key 'input'"):
        list(read_leval(path, task="t", metric="f1"))
    path.write_text(json.dumps({"input": "d", "instructions": ["a", "b"], "outputs": ["x"]}))
    with pytest.raises(DataError, match=r"keys\.jsonl:1: 2 instructions but 1 outputs"):
        list(read_leval(path, task="t", metric="f1"))
    path.write_text(json.dumps({"meeting_transcripts": "not a list"}))
    with pytest.raises(DataError, match=r"keys\.jsonl:1: 'meeting_transcripts' must be list"):
        list(read_qmsum(path))


def test_malformed_line_through_load_task(tmp_path):
    folder = tmp_path / "leval" / "Open-ended-tasks"
    folder.mkdir(parents=True)
    (folder / "news_summ.jsonl").write_text(_leval_row() + "\n" + "[1, 2]\n")
    with pytest.raises(DataError, match=r"news_summ\.jsonl:2: expected a JSON object"):
        list(load_task("news_summ", tmp_path))


def test_exam_gold_letters(tmp_path):
    question = "Pick.\nA. one\nB. two\nC. three\nD. four"
    path = tmp_path / "exam.jsonl"
    path.write_text(_leval_row(question, "(B) two") + "\n" + _leval_row(question, "DCA") + "\n")
    first, second = read_leval_exam(path, task="t", multi_answer=True)
    assert first.question == "Pick." and first.options == ["one", "two", "three", "four"]
    assert first.references == ["B"] and second.references == ["ACD"]
    path.write_text(_leval_row(question, "Because") + "\n")
    with pytest.raises(DataError, match=r"exam\.jsonl:1: output 0 'Because'"):
        list(read_leval_exam(path, task="t"))


def test_split_options_continuation_and_no_options():
    stem, options = split_options("Which?\nA. first\n  more of first\nB. second")
    assert stem == "Which?" and options == ["first more of first", "second"]
    assert split_options("Just a question") == ("Just a question", [])
