"""recipes/distill_reading.py: the filters that decide which teacher answers are taught."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))
import distill_reading as dr  # noqa: E402


def test_first_sentences_keeps_two_and_does_not_cut_at_titles_or_list_numbers():
    text = "The people named are: 1. Mr. Collins 2. Mrs. Bennet. Then Dr. Jones left.\nAnd more. Last."
    assert dr.first_sentences(text) == "The people named are: 1. Mr. Collins 2. Mrs. Bennet. Then Dr. Jones left."
    assert dr.first_sentences("One. Two. Three.", n=1) == "One."


def test_grounded_drops_names_from_another_book_and_other_scripts():
    passage = "Elizabeth walked to Netherfield, where Bingley and his sisters were waiting."
    assert dr.grounded("Elizabeth walked to Netherfield to see Bingley.", passage)
    assert not dr.grounded("The people named are Mr. Collins and Elizabeth.", passage)  # Collins is not there
    assert not dr.grounded("Я ему посмотрён у нас", passage)
    assert dr.grounded("The scene takes place in a house.", passage)  # no names at all


def test_main_name_is_a_repeated_mid_sentence_capital():
    assert dr.main_name("He saw Ahab. Then he told Ahab and the men, but Starbuck only once.") == "Ahab"
    assert dr.main_name("The sea. The ship. But nothing named twice, said Pip.") is None


class Chars:  # a tokenizer with one token per character: enough for far_rows' cutting
    def encode(self, text, add_special_tokens=False):
        return [ord(c) for c in text]

    def decode(self, ids):
        return "".join(map(chr, ids))


def test_far_rows_put_other_book_text_between_passage_and_question(tmp_path, monkeypatch):
    books = tmp_path / "books"
    books.mkdir()
    for i, b in enumerate(dr.BOOKS):
        (books / b).write_text((f"Paragraph of book {i}. " * 30 + "\n\n") * 200, encoding="utf-8")
    monkeypatch.setattr(dr, "DATA", tmp_path)
    near = tmp_path / "near.jsonl"
    rows = [("Ahab spoke to Starbuck.", "What does Ahab do in the text above?"),
            ("The sea was calm.", dr.GENERIC[0])]
    with open(near, "w") as f:
        for passage, q in rows:
            f.write(json.dumps({"messages": [{"role": "user", "content": f"{passage}\n\n{q}"},
                                             {"role": "assistant", "content": "He speaks."}],
                                "passage": 0, "book": dr.BOOKS[0]}) + "\n")
    out = list(dr.far_rows(near, Chars(), seed=1, tokens=(50, 60)))
    assert len(out) == 1  # the generic question would take in the gap too: left out
    user = out[0]["messages"][0]["content"]
    assert user.startswith("Ahab spoke to Starbuck.\n\n") and user.endswith("\n\nWhat does Ahab do in the text above?")
    assert out[0]["gap_book"] != dr.BOOKS[0] and "Paragraph of book" in user
    assert 50 <= out[0]["gap_tokens"] <= 60
    assert out[0]["messages"][1]["content"] == "He speaks."


def test_committed_rows_pass_the_filters():
    path = Path(dr.ROOT) / "recipes" / "data" / "distill-reading.jsonl"
    if not path.exists():
        pytest.skip("distill-reading.jsonl not generated")
    for raw in open(path, encoding="utf-8"):
        row = json.loads(raw)
        passage = row["messages"][0]["content"].rsplit("\n\n", 1)[0]
        answer = row["messages"][1]["content"]
        assert dr.grounded(answer, passage) and not dr.repetitive(answer), row["passage"]
