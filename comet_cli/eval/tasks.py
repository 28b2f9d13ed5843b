"""Long-document evaluation tasks: the registry and one streaming reader per format.

The data lives in a shared folder (`../shared/data` beside a checkout) laid out as
its README.md files describe: `qmsum/test.jsonl`, `squality/dev.jsonl` and
`leval/{Open,Closed}-ended-tasks/<task>.jsonl`. Every reader streams its JSONL
file line by line and yields one `EvalItem` per question, so a 10k-word meeting
with twelve queries is read once and shared by twelve items.
"""
from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from comet_cli.errors import DataError, InputError

METRICS = ("rouge", "f1", "mc", "em")


@dataclass(frozen=True)
class EvalItem:
    """One question over one long document, with its gold answers.

    `references` are free-text answers for rouge/f1/em, and gold option letters for
    mc ("C", or "ABD" where several options are correct). `options` holds the
    option texts, in letter order, for mc items only. `multi_answer` marks
    select-all-that-apply questions, whose prompt must ask for every correct letter.
    """

    task: str
    item_id: str
    document: str
    question: str
    references: list[str]
    metric: str
    options: list[str] | None = None
    multi_answer: bool = False

    def __post_init__(self):
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")


class _Line:
    """One parsed JSONL record that knows where it came from, for error messages."""

    def __init__(self, path: Path, lineno: int, record: dict):
        self.path, self.lineno, self.record = path, lineno, record

    def error(self, reason: str) -> DataError:
        return DataError(f"{self.path}:{self.lineno}: {reason}")

    def get(self, key: str, kind: type, record: dict | None = None):
        """record[key], checked to be of `kind`; DataError naming the line otherwise."""
        record = self.record if record is None else record
        if not isinstance(record, dict) or key not in record:
            raise self.error(f"missing key {key!r}")
        value = record[key]
        if not isinstance(value, kind):
            raise self.error(f"{key!r} must be {kind.__name__}, got {type(value).__name__}")
        return value


def read_jsonl(path: Path) -> Iterator[_Line]:
    """Parse `path` one line at a time, skipping blank lines."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    with path.open(encoding="utf-8") as handle:
        for lineno, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object per line")
            yield _Line(path, lineno, record)


def read_qmsum(path: Path, task: str = "qmsum") -> Iterator[EvalItem]:
    """QMSum meetings: every general and specific query, ROUGE against its answer."""
    for line in read_jsonl(path):
        turns = line.get("meeting_transcripts", list)
        document = "\n".join(
            f"{line.get('speaker', str, turn)}: {line.get('content', str, turn)}"
            for turn in turns
        )
        for kind in ("general", "specific"):
            queries = line.get(f"{kind}_query_list", list)
            for i, query in enumerate(queries):
                yield EvalItem(
                    task=task,
                    item_id=f"{task}/{line.lineno}/{kind}{i}",
                    document=document,
                    question=line.get("query", str, query),
                    references=[line.get("answer", str, query)],
                    metric="rouge",
                )


def read_squality(path: Path, task: str = "squality") -> Iterator[EvalItem]:
    """SQuALITY stories: each question scored against its (four) human summaries."""
    for line in read_jsonl(path):
        passage = line.get("passage_id", str, line.get("metadata", dict))
        document = line.get("document", str)
        for question in line.get("questions", list):
            responses = line.get("responses", list, question)
            references = [line.get("response_text", str, r) for r in responses]
            if not references:
                raise line.error("a question has no responses")
            number = line.get("question_number", int, question)
            yield EvalItem(
                task=task,
                item_id=f"{task}/{passage}/q{number}",
                document=document,
                question=line.get("question_text", str, question),
                references=references,
                metric="rouge",
            )


def _leval_pairs(line: _Line) -> Iterator[tuple[int, str, str]]:
    instructions = line.get("instructions", list)
    outputs = line.get("outputs", list)
    if len(instructions) != len(outputs):
        raise line.error(
            f"{len(instructions)} instructions but {len(outputs)} outputs"
        )
    for i, (question, answer) in enumerate(zip(instructions, outputs)):
        if not isinstance(question, str) or not isinstance(answer, str):
            raise line.error(f"instruction/output {i} is not a string")
        yield i, question, answer


def read_leval(path: Path, task: str, metric: str) -> Iterator[EvalItem]:
    """An L-Eval open-ended file: one free-text reference per instruction."""
    for line in read_jsonl(path):
        document = line.get("input", str)
        for i, question, answer in _leval_pairs(line):
            yield EvalItem(
                task=task,
                item_id=f"{task}/{line.lineno}/q{i}",
                document=document,
                question=question.strip(),
                references=[answer.strip()],
                metric=metric,
            )


_OPTION = re.compile(r"^\s*\(?([A-Z])[.)]\s*(.*?)\s*$")
_GOLD = re.compile(r"^\(?([A-Z]+)\b")


def split_options(question: str) -> tuple[str, list[str]]:
    """Split an exam instruction into its stem and its "A. ..." option texts.

    Option lines must run A, B, C, ... in order; a later line that is not an
    option continues the previous one. Without option lines: (question, []).
    """
    stem: list[str] = []
    options: list[str] = []
    for text in question.splitlines():
        match = _OPTION.match(text)
        if match and match.group(1) == chr(ord("A") + len(options)):
            options.append(match.group(2))
        elif options:
            # A continuation line of a long option.
            options[-1] = f"{options[-1]} {text.strip()}".strip()
        else:
            stem.append(text)
    return "\n".join(stem).strip(), options


def read_leval_exam(
    path: Path, task: str, multi_answer: bool = False
) -> Iterator[EvalItem]:
    """An L-Eval lettered exam (coursera, tpo): options sit inside the instruction.

    The gold output is the letter(s), e.g. "C", "ABD" or "(B) ...". With
    `multi_answer` (coursera) any subset of the options may be correct.
    """
    for line in read_jsonl(path):
        document = line.get("input", str)
        for i, question, answer in _leval_pairs(line):
            stem, options = split_options(question)
            if len(options) < 2:
                raise line.error(f"instruction {i} has no lettered options (A., B., ...)")
            gold = _GOLD.match(answer.strip())
            letters = gold.group(1) if gold else ""
            valid = {chr(ord("A") + k) for k in range(len(options))}
            if not letters or not set(letters) <= valid:
                raise line.error(f"output {i} {answer[:20]!r} is not an option letter")
            yield EvalItem(
                task=task,
                item_id=f"{task}/{line.lineno}/q{i}",
                document=document,
                question=stem,
                references=["".join(sorted(set(letters)))],
                metric="mc",
                options=options,
                multi_answer=multi_answer,
            )


_TRUE_FALSE = re.compile(r"^\s*(True|False)\b", re.I)


def read_leval_true_false(path: Path, task: str = "sci_fi") -> Iterator[EvalItem]:
    """L-Eval sci_fi: True/False statements judged by the world of the story.

    The gold output is "True [fact: False]": the first value is the answer
    within the document (L-Eval's "loyalty"), which is what the question asks;
    the real-world fact is dropped. Options are A. True, B. False.
    """
    for line in read_jsonl(path):
        document = line.get("input", str)
        for i, question, answer in _leval_pairs(line):
            gold = _TRUE_FALSE.match(answer)
            if not gold:
                raise line.error(f"output {i} {answer[:20]!r} is not True/False")
            # Drop the "1.\t" numbering that every statement starts with.
            stem = re.sub(r"^\s*\d+\.\s*", "", question).strip()
            yield EvalItem(
                task=task,
                item_id=f"{task}/{line.lineno}/q{i}",
                document=document,
                question=stem,
                references=["A" if gold.group(1).lower() == "true" else "B"],
                metric="mc",
                options=["True", "False"],
            )


@dataclass(frozen=True)
class TaskSpec:
    """A registry row: where a task's file lives and how to read it."""

    name: str
    description: str
    metric: str
    path: str
    reader: Callable[..., Iterator[EvalItem]] = field(repr=False)
    options: dict = field(default_factory=dict, repr=False)

    def read(self, data_dir: Path) -> Iterator[EvalItem]:
        return self.reader(Path(data_dir) / self.path, task=self.name, **self.options)


def _leval(name: str, description: str, metric: str) -> TaskSpec:
    return TaskSpec(
        name, description, metric, f"leval/Open-ended-tasks/{name}.jsonl",
        read_leval, {"metric": metric},
    )


_SPECS = [
    TaskSpec("qmsum", "QMSum test: query-based meeting summarization (281 queries)",
             "rouge", "qmsum/test.jsonl", read_qmsum),
    TaskSpec("squality", "SQuALITY dev: question-focused story summaries, 4 references each",
             "rouge", "squality/dev.jsonl", read_squality),
    _leval("meeting_summ", "L-Eval meeting_summ: query-based meeting summaries (QMSum)", "rouge"),
    _leval("news_summ", "L-Eval news_summ: multi-article news summaries (Multi-News)", "rouge"),
    _leval("patent_summ", "L-Eval patent_summ: patent abstracts (BigPatent)", "rouge"),
    _leval("natural_question", "L-Eval natural_question: factoid QA over Wikipedia pages",
           "f1"),
    _leval("multidoc_qa", "L-Eval multidoc_qa: dialogue QA over several documents", "f1"),
    _leval("financial_qa", "L-Eval financial_qa: QA over earnings-call transcripts", "f1"),
    _leval("legal_contract_qa", "L-Eval legal_contract_qa: clause finding in contracts (CUAD)",
           "f1"),
    TaskSpec("coursera", "L-Eval coursera: lecture exam, select all correct options A-D",
             "mc", "leval/Closed-ended-tasks/coursera.jsonl", read_leval_exam,
             {"multi_answer": True}),
    TaskSpec("tpo", "L-Eval tpo: TOEFL lecture comprehension, one option A-D",
             "mc", "leval/Closed-ended-tasks/tpo.jsonl", read_leval_exam),
    TaskSpec("sci_fi", "L-Eval sci_fi: True/False by the story's world, options A-B",
             "mc", "leval/Closed-ended-tasks/sci_fi.jsonl", read_leval_true_false),
]

TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in _SPECS}


def get_task(name: str) -> TaskSpec:
    """The registry row for `name`; InputError with a suggestion when unknown."""
    if name in TASKS:
        return TASKS[name]
    close = difflib.get_close_matches(name, TASKS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise InputError(f"unknown task {name!r} (known: {', '.join(TASKS)}){hint}")


def load_task(name: str, data_dir: str | Path, limit: int | None = None) -> Iterator[EvalItem]:
    """Stream the items of task `name` from `data_dir` (the shared data folder).

    `limit` caps the number of items (questions), not documents. Errors are
    raised when the task is unknown or the folder is missing, before iteration.
    """
    spec = get_task(name)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: evaluation data folder not found")
    path = data_dir / spec.path
    if not path.is_file():
        raise DataError(f"{path}: data file for task {name!r} not found")
    if limit is not None and limit < 0:
        raise InputError(f"limit must be >= 0, got {limit}")
    return _take(spec.read(data_dir), limit)


def _take(items: Iterator[EvalItem], limit: int | None) -> Iterator[EvalItem]:
    for count, item in enumerate(items):
        if limit is not None and count >= limit:
            return
        yield item
