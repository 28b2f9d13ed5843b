"""Answer-quality metrics for long-document evaluation.

Every metric takes one prediction and a list of references and returns the best
score over the references (the usual convention for multi-reference sets such as
SQuALITY, where any of four human summaries is an acceptable target).

- ROUGE-1/2/L F-measure: Google's `rouge-score` package (the `eval` extra), Porter
  stemming on, each ROUGE type maximised over the references independently.
- Token F1 and exact match: the SQuAD evaluation script's normalization
  (lowercase, drop punctuation and the articles a/an/the, collapse whitespace).
- Multiple-choice accuracy: the chosen letter(s) are extracted from a free-form
  answer ("(B)", "Answer: B", "B. to earn money", "A, C") and compared as a set.
"""
from __future__ import annotations

import re
import string
from collections import Counter
from functools import lru_cache
from typing import Iterable, Mapping, Sequence

from comet_cli.errors import CometError

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


@lru_cache(maxsize=1)
def _rouge_scorer():
    # Imported lazily: rouge-score is an optional extra and pulls in nltk.
    try:
        from rouge_score import rouge_scorer
    except ImportError as exc:
        raise CometError(
            "ROUGE needs the rouge-score package: pip install 'cometkit[eval]'"
        ) from exc
    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def rouge(prediction: str, references: Sequence[str]) -> dict[str, float]:
    """ROUGE-1/2/L F-measure of `prediction`, each the maximum over `references`."""
    best = dict.fromkeys(ROUGE_TYPES, 0.0)
    scorer = _rouge_scorer()
    for reference in references:
        scores = scorer.score(reference, prediction)
        for name in ROUGE_TYPES:
            best[name] = max(best[name], scores[name].fmeasure)
    return best


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalization: lowercase, drop punctuation and articles, collapse spaces."""
    text = text.lower().translate(_PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _token_f1(prediction: str, reference: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    ref_tokens = normalize_answer(reference).split()
    # SQuAD v2 convention: two empty answers agree, one empty answer scores 0.
    if not pred_tokens or not ref_tokens:
        return float(pred_tokens == ref_tokens)
    overlap = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, references: Sequence[str]) -> float:
    """SQuAD token F1 between `prediction` and the best-matching reference."""
    return max((_token_f1(prediction, ref) for ref in references), default=0.0)


def exact_match(prediction: str, references: Sequence[str]) -> float:
    """1.0 if the normalized prediction equals any normalized reference, else 0.0."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(ref) for ref in references))


def _letters(options: Sequence[str] | None) -> str:
    count = len(options) if options else 4
    return string.ascii_uppercase[:count]


def _letter_run(letters: str) -> str:
    # One or more choice letters, adjacent or separated by commas, slashes, "&",
    # "and" or spaces: "B", "AC", "A, C", "A and D", "(A) (C)".
    one = rf"\(?[{letters}]\)?"
    return rf"{one}(?:\s*(?:,|/|&|\band\b)?\s*{one})*"


def extract_choice(
    prediction: str, options: Sequence[str] | None = None, multi: bool = False
) -> str:
    """The option letter(s) a free-form answer chose, sorted ("B", "AC"), or "".

    Tried in order, the first hit wins: the whole answer is letters ("B", "(b).",
    "A, C"); letters after "answer", then after "option/choice" ("Answer: B",
    "the correct option is (C)"); a leading letter with punctuation ("B. to earn money",
    "C) ..."); parenthesised letters anywhere ("... so (D)"); the text of the
    options ("True" for options True/False); lone capital letters, where an "A"
    followed by a lowercase word is read as the article. With `multi` every
    letter found by the winning rule is kept, otherwise only the first.
    """
    text = prediction.strip()
    letters = _letters(options)
    run = _letter_run(letters)
    # A lone lowercase letter ("b", "(c).") is read as that letter; longer
    # lowercase text is not upper-cased, or "bad" would read as "ABD".
    if re.fullmatch(rf"[\s\W]*[{letters.lower()}][\s\W]*", text):
        text = text.upper()
    whole = re.fullmatch(rf"[\s\W]*({run})[\s.!:;)\]]*", text)
    if whole:
        return _pick(whole.group(1), letters, multi)
    # "Answer" outranks "option": "Options A and B are wrong; the answer is C".
    after = rf"\W{{0,3}}(?:(?i:is|are|would be|should be)\W{{1,3}})?({run})(?!\w)"
    patterns = (
        rf"(?i:answers?){after}",
        rf"(?i:options?|choices?){after}",
        rf"^[\s\W]*({run})\s*[.):\]]",
        rf"(\([{letters}]\)(?:\s*(?:,|&|\band\b|\s)\s*\([{letters}]\))*)",
    )
    for pattern in patterns:
        match = re.search(pattern, text)
        if match:
            return _pick(match.group(1), letters, multi)
    chosen = _match_option_text(text, options or (), multi)
    if chosen:
        return chosen
    # A capital letter standing alone; "A" before a lowercase word (other than
    # "and"/"or") is the article, as in "A good answer is B".
    others = letters.replace("A", "")
    lone = rf"(?<![\w'])(?:[{others}]|A(?!\s+(?!and\b|or\b)[a-z]))(?![\w'])"
    found = re.findall(lone, text)
    if found:
        return _pick(" ".join(found), letters, multi)
    return ""


def _pick(run: str, letters: str, multi: bool) -> str:
    if multi:
        return "".join(sorted(set(re.findall(rf"[{letters}]", run))))
    return re.search(rf"[{letters}]", run).group(0)


def _match_option_text(text: str, options: Sequence[str], multi: bool) -> str:
    # Letters of the options whose normalized text appears in the answer; for a
    # single-answer question only an unambiguous single hit counts.
    answer = f" {normalize_answer(text)} "
    hits = [
        string.ascii_uppercase[i]
        for i, option in enumerate(options)
        if normalize_answer(option) and f" {normalize_answer(option)} " in answer
    ]
    if multi:
        return "".join(hits)
    return hits[0] if len(hits) == 1 else ""


def choice_accuracy(
    prediction: str,
    references: Sequence[str],
    options: Sequence[str] | None = None,
    multi: bool = False,
) -> float:
    """1.0 if the letters chosen in `prediction` equal a reference's letter set.

    References are gold letters, e.g. "C", or "ABD" for a select-all question.
    """
    chosen = extract_choice(prediction, options, multi=multi)
    if not chosen:
        return 0.0
    return float(any(chosen == "".join(sorted(set(ref.upper()))) for ref in references))


def aggregate(rows: Iterable[Mapping[str, object]]) -> dict[str, float]:
    """Mean of every numeric field over per-item score dicts, plus item counts.

    Returns {"n": number of items, metric: mean, ...}. A metric missing from some
    items is averaged over the items that have it, and its count is reported as
    "n_<metric>". Non-numeric fields (ids, predictions) are ignored.
    """
    totals: dict[str, float] = {}
    counts: dict[str, int] = {}
    n = 0
    for row in rows:
        n += 1
        for key, value in row.items():
            if isinstance(value, (int, float)):
                totals[key] = totals.get(key, 0.0) + float(value)
                counts[key] = counts.get(key, 0) + 1
    result: dict[str, float] = {"n": n}
    for key, total in totals.items():
        result[key] = total / counts[key]
        if counts[key] != n:
            result[f"n_{key}"] = counts[key]
    return result
