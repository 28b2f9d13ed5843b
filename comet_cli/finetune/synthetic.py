"""Deterministic synthetic long-context tasks, at the text level (no tokenizer needed).

- passkey: a 5-digit key in a short needle sentence, hidden at a relative depth in book text.
- BABILong-style: the facts of one bAbI story scattered, in order, through book text; the bAbI
  question is asked at the end (booydar/babilong does the same with PG-19; see
  ../shared/data/babi/README.md).
- recall: a quoted passage of book text hidden in other book text, to be repeated word for word at
  the end. Every answer token needs the memory, so one sample gives the memory dozens of targets
  where a pass key gives six (the reconstruction objective of ICAE and Activation Beacon).

Lengths: `length` counts characters of the context by default. Pass `count_tokens` (str -> int,
e.g. `lambda s: len(tok.encode(s, add_special_tokens=False))`) and `length` counts tokens of the
context instead; the result then has at most `length` tokens and usually within 2% of it.
Everything random comes from the `rng` argument, so a seed fixes the sample.
"""
from __future__ import annotations

import os
import random
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from comet_cli.errors import DataError, fail

PASSKEY_PREFACE = ("There is an important piece of information hidden inside a lot of irrelevant text. "
                   "Find it and memorize it; I will ask you about it.\n\n")
PASSKEY_QUESTION = "What is the pass key?"
PASSKEY_NEEDLE = "The pass key is {key}. Remember it. {key} is the pass key."  # .format(key=...)
RECALL_QUESTION = "Repeat the passage you were asked to remember, word for word."

CountTokens = Callable[[str], int]


@dataclass
class SyntheticSample:
    """One task instance: the model reads `context`, then `question`, and should answer `answer`."""

    context: str
    question: str
    answer: str
    kind: str = "passkey"
    depth: float = 0.0


class FillerText:
    """Background text drawn from book files at random offsets.

    Files are read on first use and at most `max_cached` are held in memory (a book is a few MB);
    Gutenberg header and footer lines are dropped if present, line ends normalised to LF.
    """

    def __init__(self, paths: Sequence[str | os.PathLike], max_cached: int = 1):
        if not paths:
            raise DataError("no filler text files given (expected book .txt files)")
        self.paths = [Path(p) for p in paths]
        for p in self.paths:
            if not p.is_file():
                raise fail(p, "no such file (filler text)", DataError)
        # Pick books in proportion to their size so every part of the corpus is equally likely.
        self.sizes = [p.stat().st_size for p in self.paths]
        self.max_cached = max(1, max_cached)
        self._cache: OrderedDict[Path, str] = OrderedDict()

    def text(self, path: Path) -> str:
        """The cleaned text of one book (cached, LRU)."""
        if path in self._cache:
            self._cache.move_to_end(path)
            return self._cache[path]
        try:
            raw = path.read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            raise fail(path, f"cannot read filler text ({e.strerror})", DataError) from None
        text = _strip_gutenberg(raw.replace("\r\n", "\n"))
        if len(text) < 100:
            raise fail(path, "filler text file is (nearly) empty", DataError)
        self._cache[path] = text
        while len(self._cache) > self.max_cached:
            self._cache.popitem(last=False)
        return text

    def take(self, rng: random.Random, n_chars: int) -> str:
        """`n_chars` characters starting at a random word in a random book, continuing into
        another random book when one runs out."""
        pieces, need = [], n_chars
        while need > 0:
            path = rng.choices(self.paths, weights=self.sizes, k=1)[0]
            text = self.text(path)
            start = rng.randrange(len(text))
            # Start at the beginning of a word, not in the middle of one.
            space = text.find(" ", start)
            start = space + 1 if 0 <= space < len(text) - 1 else 0
            piece = text[start:start + need]
            pieces.append(piece)
            need -= len(piece)
        return " ".join(p.strip() for p in pieces)[:n_chars]


def _strip_gutenberg(text: str) -> str:
    start = re.search(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*$", text, re.M | re.I)
    if start:
        text = text[start.end():]
    end = re.search(r"^\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG", text, re.M | re.I)
    if end:
        text = text[:end.start()]
    return text.strip()


def insert_at(text: str, depth: float, needle: str) -> str:
    """Insert `needle` at relative `depth` of `text`, at the next sentence or word boundary."""
    return insert_many(text, [depth], [needle])


def insert_many(text: str, depths: Sequence[float], needles: Sequence[str]) -> str:
    """Insert needles (in order) at the given relative depths, each at a sentence/word boundary."""
    cuts = [_boundary(text, int(min(max(d, 0.0), 1.0) * len(text))) for d in depths]
    order = sorted(range(len(needles)), key=lambda i: (cuts[i], i))
    out, prev = [], 0
    for i in order:
        out.append(text[prev:cuts[i]])
        c = cuts[i]
        lead = "" if c == 0 or text[c - 1].isspace() else " "
        trail = "" if c < len(text) and text[c].isspace() else " "
        out.append(lead + needles[i] + trail)
        prev = cuts[i]
    out.append(text[prev:])
    return "".join(out).strip()


def _boundary(text: str, pos: int) -> int:
    if pos <= 0 or pos >= len(text):
        return max(0, min(pos, len(text)))
    m = re.compile(r"[.!?]\s").search(text, pos, min(len(text), pos + 400))
    if m:
        return m.end()
    space = text.find(" ", pos)
    return space + 1 if space >= 0 else len(text)


def fit_filler(rng: random.Random, filler: FillerText, length: int, build: Callable[[str], str],
               count_tokens: CountTokens | None = None) -> str:
    """Draw filler and cut it so that `build(filler_part)` has `length` characters (or at most
    `length` tokens with `count_tokens`). Returns build's output."""
    if count_tokens is None:
        overhead = len(build(""))
        return build(_cut_words(filler.take(rng, max(0, length - overhead) + 50), max(0, length - overhead)))
    overhead = count_tokens(build(""))
    budget = length - overhead
    if budget <= 0:
        return build("")
    # Books run at ~4.3 characters per token; 8 leaves room for odd text without a second draw.
    pool = filler.take(rng, budget * 8)
    cut = min(len(pool), budget * 4)
    for _ in range(6):
        n = count_tokens(build(_cut_words(pool, cut)))
        if length * 0.98 <= n <= length or (n < length and cut >= len(pool)):
            break
        cut = min(len(pool), max(1, int(cut * (length - 0.01 * length) / max(n, 1))))
    text = build(_cut_words(pool, cut))
    while count_tokens(text) > length and cut > 1:
        cut = int(cut * 0.97)
        text = build(_cut_words(pool, cut))
    return text


def _cut_words(text: str, n: int) -> str:
    if n >= len(text):
        return text
    space = text.rfind(" ", 0, n)
    return text[:space if space > 0 else n]


KEY_KINDS = ("any", "repeat", "distinct")


def draw_key(rng: random.Random, kind: str = "any") -> str:
    """A random 5-digit key (no leading zero). `kind` "repeat" keeps drawing until some digit occurs
    twice (about 70% of all keys), "distinct" until all five differ; "any" takes the first draw."""
    if kind not in KEY_KINDS:
        raise ValueError(f"unknown key kind {kind!r}; known: {', '.join(KEY_KINDS)}")
    while True:
        key = str(rng.randint(10000, 99999))
        if kind == "any" or (len(set(key)) < 5) == (kind == "repeat"):
            return key


def passkey_sample(rng: random.Random, filler: FillerText, length: int, depth: float | None = None,
                   count_tokens: CountTokens | None = None, keys: str = "any") -> SyntheticSample:
    """A pass-key retrieval item: a random 5-digit key (of kind `keys`, see `draw_key`) at relative
    `depth` (random if None) of a context of `length` characters (tokens with `count_tokens`)."""
    key = draw_key(rng, keys)
    depth = rng.random() if depth is None else depth
    needle = PASSKEY_NEEDLE.format(key=key)
    context = fit_filler(rng, filler, length, lambda t: PASSKEY_PREFACE + insert_at(t, depth, needle), count_tokens)
    return SyntheticSample(context=context, question=PASSKEY_QUESTION, answer=key, kind="passkey", depth=depth)


@dataclass
class BabiItem:
    """One bAbI question with the story facts before it (in order)."""

    facts: list[str]
    question: str
    answer: str


class BabiTask:
    """The questions of one bAbI file: `ID text` lines, questions as `ID q\\tanswer\\tsupport`."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise fail(self.path, "no such file (bAbI task)", DataError)
        self.items: list[BabiItem] = []
        facts: list[str] = []
        with open(self.path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.rstrip("\n")
                if not line.strip():
                    continue
                num, _, rest = line.partition(" ")
                if not num.isdigit():
                    raise DataError(f"{self.path}:{lineno}: expected 'ID text', got {line[:40]!r}")
                if num == "1":
                    facts = []
                if "\t" in rest:
                    parts = rest.split("\t")
                    if len(parts) < 2 or not parts[1].strip():
                        raise DataError(f"{self.path}:{lineno}: question line without an answer")
                    self.items.append(BabiItem(list(facts), parts[0].strip(), parts[1].strip()))
                else:
                    facts.append(rest.strip())
        if not self.items:
            raise fail(self.path, "no bAbI questions found", DataError)


def babilong_sample(rng: random.Random, task: BabiTask, filler: FillerText, length: int,
                    count_tokens: CountTokens | None = None) -> SyntheticSample:
    """A BABILong-style item: a random question of `task`, its story facts scattered in order at
    random depths of a context of `length` characters (tokens with `count_tokens`).

    If the facts alone exceed `length`, the context is the facts with no filler.
    """
    item = task.items[rng.randrange(len(task.items))]
    depths = sorted(rng.random() for _ in item.facts)
    context = fit_filler(rng, filler, length, lambda t: insert_many(t, depths, item.facts), count_tokens)
    return SyntheticSample(context=context, question=item.question, answer=item.answer, kind="babilong",
                           depth=depths[-1] if depths else 0.0)


def recall_sample(rng: random.Random, filler: FillerText, length: int, depth: float | None = None,
                  passage_tokens: tuple[int, int] = (32, 96),
                  count_tokens: CountTokens | None = None) -> SyntheticSample:
    """A recall item: a passage of book text, quoted in a context of `length` characters (tokens
    with `count_tokens`) at relative `depth`; the answer is the passage itself.

    The passage is `passage_tokens` long (uniform in the range; 4 characters a token without
    `count_tokens`), cut from the filler like the context (fit_filler), at word boundaries. The answer counts toward
    the sample's length, not the context's."""
    want = rng.randint(*passage_tokens)
    passage = " ".join(fit_filler(rng, filler, want if count_tokens else want * 4, lambda t: t, count_tokens).split())
    depth = rng.random() if depth is None else depth
    needle = f'Remember this passage word for word: "{passage}" End of the passage.'
    context = fit_filler(rng, filler, length, lambda t: insert_at(t, depth, needle), count_tokens)
    return SyntheticSample(context=context, question=RECALL_QUESTION, answer=passage, kind="recall", depth=depth)
