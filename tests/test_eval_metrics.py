import importlib.util
import sys

import pytest

from comet_cli.errors import CometError
from comet_cli.eval import metrics
from comet_cli.eval.metrics import (
    aggregate,
    choice_accuracy,
    exact_match,
    extract_choice,
    normalize_answer,
    rouge,
    token_f1,
)
from comet_cli.eval.scoring import build_prompt, score_item
from comet_cli.eval.tasks import EvalItem

needs_rouge = pytest.mark.skipif(
    importlib.util.find_spec("rouge_score") is None,
    reason="rouge-score is not installed (pip install 'cometkit[eval]')",
)

OPTIONS = [
    "to study human form and movement",
    "to earn money by painting portraits",
    "to paint farm animals outdoors",
    "to meet people who could model",
]


@needs_rouge
def test_rouge_identical_and_disjoint():
    assert rouge("the cat sat on the mat", ["the cat sat on the mat"]) == {
        "rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0,
    }
    assert rouge("dogs bark loudly", ["a cat sat"]) == {
        "rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0,
    }


@needs_rouge
def test_rouge_partial_overlap_and_stemming():
    # Unigrams: prediction {the, cat, ran}, reference {the, cat, sat, down}:
    # 2 shared -> P = 2/3, R = 2/4, F = 4/7. Bigrams: only "the cat" -> P = 1/2,
    # R = 1/3, F = 2/5. LCS "the cat" has length 2 -> same as ROUGE-1.
    scores = rouge("the cat ran", ["the cat sat down"])
    assert scores["rouge1"] == pytest.approx(4 / 7)
    assert scores["rouge2"] == pytest.approx(2 / 5)
    assert scores["rougeL"] == pytest.approx(4 / 7)
    # Porter stemming: "cats running" matches "cat run".
    assert rouge("cats running", ["cat run"])["rouge1"] == pytest.approx(1.0)


@needs_rouge
def test_rouge_takes_the_best_reference_per_type():
    scores = rouge("the cat ran", ["dogs bark", "the cat sat down", "the cat ran"])
    assert scores["rouge1"] == pytest.approx(1.0)


def test_rouge_without_the_package_says_what_to_install(monkeypatch):
    metrics._rouge_scorer.cache_clear()
    monkeypatch.setitem(sys.modules, "rouge_score", None)
    try:
        with pytest.raises(CometError, match=r"pip install 'cometkit\[eval\]'"):
            rouge("a", ["a"])
    finally:
        metrics._rouge_scorer.cache_clear()


def test_normalize_answer_squad_style():
    assert normalize_answer("The  Cat, an apple!") == "cat apple"


def test_token_f1_hand_computed():
    assert token_f1("April 25, 2018", ["April 25 , 2018"]) == 1.0
    assert token_f1("blue sky", ["red ocean"]) == 0.0
    # "the cat sat" -> [cat, sat]; "a cat sat on the mat" -> [cat, sat, on, mat]:
    # overlap 2, P = 1, R = 1/2, F1 = 2/3.
    assert token_f1("the cat sat", ["a cat sat on the mat"]) == pytest.approx(2 / 3)
    # Repeated tokens count once per occurrence in both (multiset overlap):
    # [cat, cat, dog] vs [cat, dog, dog]: overlap 2, P = R = 2/3.
    assert token_f1("cat cat dog", ["cat dog dog"]) == pytest.approx(2 / 3)
    # Maximum over references.
    assert token_f1("ten", ["nine", "10", "ten"]) == 1.0
    assert token_f1("", [""]) == 1.0
    assert token_f1("", ["something"]) == 0.0


def test_exact_match():
    assert exact_match("The Beatles.", ["beatles"]) == 1.0
    assert exact_match("Beatles band", ["beatles"]) == 0.0
    assert exact_match("x", ["y", "X!"]) == 1.0


@pytest.mark.parametrize(
    "answer, letter",
    [
        ("B", "B"),
        ("(B)", "B"),
        ("b", "B"),
        ("(c).", "C"),
        ("Answer: B", "B"),
        ("**Answer: C**", "C"),
        ("B.", "B"),
        ("B. to earn money by painting portraits", "B"),
        ("C) because the lecture says so", "C"),
        ("The answer is (D).", "D"),
        ("The correct option is: A", "A"),
        ("The answer is A because the professor says so.", "A"),
        ("A good answer would be B.", "B"),
        ("Options A and B are wrong; the answer is C", "C"),
        ("I think C is right", "C"),
        ("to earn money by painting portraits", "B"),
        ("none of these", ""),
        ("", ""),
    ],
)
def test_extract_choice_single(answer, letter):
    assert extract_choice(answer, OPTIONS) == letter


@pytest.mark.parametrize(
    "answer, letters",
    [
        ("ABC", "ABC"),
        ("A, C", "AC"),
        ("C, A", "AC"),
        ("A and D", "AD"),
        ("Answer: A, B, D", "ABD"),
        ("(A) (C)", "AC"),
        ("I think A and C", "AC"),
        ("Answers: BD.", "BD"),
        ("B", "B"),
    ],
)
def test_extract_choice_multi(answer, letters):
    assert extract_choice(answer, OPTIONS, multi=True) == letters


def test_extract_choice_true_false_by_text():
    assert extract_choice("False.", ["True", "False"]) == "B"
    assert extract_choice("The statement is true.", ["True", "False"]) == "A"
    # Letters beyond the options do not count.
    assert extract_choice("C", ["True", "False"]) == ""


def test_choice_accuracy_compares_letter_sets():
    assert choice_accuracy("Answer: (C)", ["C"], OPTIONS) == 1.0
    assert choice_accuracy("Answer: B", ["C"], OPTIONS) == 0.0
    assert choice_accuracy("C, A, B", ["ABC"], OPTIONS, multi=True) == 1.0
    # A subset of the correct options is wrong.
    assert choice_accuracy("A, B", ["ABC"], OPTIONS, multi=True) == 0.0
    assert choice_accuracy("no idea", ["A"], OPTIONS) == 0.0


def test_aggregate_means_and_counts():
    rows = [{"f1": 1.0, "em": 1.0, "item_id": "x"}, {"f1": 0.5, "em": 0.0}]
    assert aggregate(rows) == {"n": 2, "f1": 0.75, "em": 0.5}
    mixed = aggregate(rows + [{"accuracy": 1.0}])
    assert mixed["n"] == 3 and mixed["n_f1"] == 2 and mixed["n_accuracy"] == 1
    assert mixed["accuracy"] == 1.0
    assert aggregate([]) == {"n": 0}


def _item(metric, references, options=None, multi=False):
    return EvalItem("t", "t/1/q0", "doc", "Which one?", references, metric, options, multi)


@needs_rouge
def test_score_item_applies_the_items_metric():
    assert set(score_item(_item("rouge", ["a b c"]), "a b c")) == {"rouge1", "rouge2", "rougeL"}
    assert score_item(_item("f1", ["cat sat"]), "the cat sat") == {"f1": 1.0, "em": 1.0}
    assert score_item(_item("mc", ["B"], OPTIONS), "(B)") == {"accuracy": 1.0}
    assert score_item(_item("mc", ["AB"], OPTIONS, True), "A and B") == {"accuracy": 1.0}
    assert score_item(_item("em", ["Paris"]), "paris.") == {"em": 1.0}


def test_build_prompt_formats_options():
    assert build_prompt(_item("f1", ["x"])) == "Which one?"
    prompt = build_prompt(_item("mc", ["B"], ["red", "blue"]))
    assert prompt == "Which one?\nA. red\nB. blue\nAnswer with the letter only."
    multi = build_prompt(_item("mc", ["AB"], ["red", "blue"], True))
    assert multi.startswith("Which one?\nA. red\nB. blue\n") and "all correct" in multi


def test_eval_item_rejects_unknown_metric():
    with pytest.raises(ValueError):
        _item("bleu", ["x"])
