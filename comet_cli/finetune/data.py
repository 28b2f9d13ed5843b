"""Training samples as token ids and labels, and a deterministic, resumable mixture of sources.

A Sample's labels are already shifted (METHOD.md 4.1): labels[t] is the target for position t,
input_ids[t + 1] where that token is supervised and -100 elsewhere; the last label is -100.

- chat_samples: JSONL chats, loss on assistant content only (METHOD.md 8.2).
- text_samples: long plain text, loss on every position after the first chunk.
- passkey_samples / babilong_samples / recall_samples: synthetic long-context QA rendered as a chat;
  loss on the answer.
- MixedStream: an infinite weighted mixture whose `position` restores exactly on resume.
"""
from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from comet_cli.errors import DataError, fail
from comet_cli.finetune.synthetic import (BabiTask, FillerText, SyntheticSample, babilong_sample,
                                          passkey_sample, recall_sample)

if TYPE_CHECKING:
    from comet_cli.finetune.config import DataSection

IGNORE = -100
MIN_TOKENS = 4  # METHOD.md 8.2 drops shorter examples


@dataclass
class Sample:
    """One training sequence; labels are shifted (see the module docstring)."""

    input_ids: list[int]
    labels: list[int]

    @property
    def n_supervised(self) -> int:
        return sum(1 for y in self.labels if y != IGNORE)


def shift_labels(input_ids: Sequence[int], supervised: Sequence[bool]) -> list[int]:
    """labels[t] = input_ids[t + 1] if token t + 1 is supervised, else -100; the last is -100."""
    labels = [input_ids[t + 1] if supervised[t + 1] else IGNORE for t in range(len(input_ids) - 1)]
    return labels + [IGNORE] if input_ids else []


# ---- chat ---------------------------------------------------------------------------------------

def read_chat_jsonl(path: str | Path) -> list[tuple[int, list[dict]]]:
    """(line number, messages) for every row of a JSONL file: rows with `messages`, a list of
    {role, content} or a JSON string of one. Raises DataError naming the file and line of the
    first bad row."""
    path = Path(path)
    if not path.is_file():
        raise fail(path, "no such file (chat JSONL)", DataError)
    chats = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict) or "messages" not in row:
                raise DataError(f"{where}: missing 'messages'")
            messages = row["messages"]
            if isinstance(messages, str):
                try:
                    messages = json.loads(messages)
                except json.JSONDecodeError as e:
                    raise DataError(f"{where}: 'messages' is a string but not valid JSON ({e.msg})") from None
            if not isinstance(messages, list) or not messages:
                raise DataError(f"{where}: 'messages' must be a non-empty list of {{role, content}}")
            for i, m in enumerate(messages):
                if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
                    raise DataError(f"{where}: message {i} needs string 'role' and 'content'")
            if not any(m["role"] == "assistant" for m in messages):
                raise DataError(f"{where}: no assistant message")
            chats.append((lineno, [{"role": m["role"], "content": m["content"]} for m in messages]))
    return chats


def assistant_spans(messages: list[dict], tokenizer) -> tuple[str, list[tuple[int, int]]]:
    """The rendered chat and the character span of every assistant message's content.

    Rendering messages[:i] (with the generation prompt before an assistant turn) gives where
    message i's content may start, so a role header or system prompt is never mistaken for it;
    the content is then found in the full text from there on. This works without
    `{% generation %}` support, and with templates that trim content or add think blocks.
    """
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    spans, cursor = [], 0
    for i, m in enumerate(messages):
        if i > 0:
            prefix = tokenizer.apply_chat_template(messages[:i], tokenize=False,
                                                   add_generation_prompt=m["role"] == "assistant")
            if full.startswith(prefix):
                cursor = max(cursor, len(prefix))
        content = m["content"] if m["content"] in full[cursor:] else m["content"].strip()
        start = full.find(content, cursor)
        if start < 0:
            raise DataError(f"the chat template rewrites message {i} ({m['role']}); cannot find its tokens")
        if m["role"] == "assistant" and content:
            spans.append((start, start + len(content)))
        cursor = start + len(content)
    return full, spans


def tokens_in_spans(tokenizer, text: str, spans: list[tuple[int, int]],
                    use_offsets: bool | None = None) -> tuple[list[int], list[bool]]:
    """Token ids of `text` and, per token, whether it overlaps one of the character spans.

    Fast tokenizers give character offsets; otherwise span edges are found by tokenizing prefixes.
    """
    use_offsets = getattr(tokenizer, "is_fast", False) if use_offsets is None else use_offsets
    if use_offsets:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(enc["input_ids"])
        inside = [any(a < e and b > s for s, e in spans) for a, b in enc["offset_mapping"]]
        return ids, inside
    ids = tokenizer.encode(text, add_special_tokens=False)
    inside = [False] * len(ids)
    for s, e in spans:
        lo = len(tokenizer.encode(text[:s], add_special_tokens=False))
        hi = len(tokenizer.encode(text[:e], add_special_tokens=False))
        for t in range(lo, min(hi, len(ids))):
            inside[t] = True
    return ids, inside


def chat_sample(messages: list[dict], tokenizer, max_tokens: int) -> Sample | None:
    """One chat as a Sample (loss on assistant content), truncated to its first max_tokens tokens;
    None if it is shorter than 4 tokens or no supervised token is left."""
    text, spans = assistant_spans(messages, tokenizer)
    ids, supervised = tokens_in_spans(tokenizer, text, spans)
    ids, supervised = ids[:max_tokens], supervised[:max_tokens]
    if len(ids) < MIN_TOKENS:
        return None
    sample = Sample(ids, shift_labels(ids, supervised))
    return sample if sample.n_supervised else None


def chat_samples(path: str | Path, tokenizer, max_tokens: int) -> list[Sample]:
    """All usable chats of a JSONL file (see chat_sample); DataError if none is usable."""
    samples = []
    for lineno, messages in read_chat_jsonl(path):
        try:
            sample = chat_sample(messages, tokenizer, max_tokens)
        except DataError as e:
            raise DataError(f"{path}:{lineno}: {e}") from None
        if sample is not None:
            samples.append(sample)
    if not samples:
        raise fail(path, f"no chat keeps a supervised assistant token within max_tokens={max_tokens}", DataError)
    return samples


# ---- plain text ---------------------------------------------------------------------------------

def text_samples(paths: Sequence[str | Path], tokenizer, max_tokens: int, chunk_size: int) -> list[Sample]:
    """Long text cut into consecutive samples of max_tokens tokens. Loss on the next token at every
    position after the first chunk (the first chunk_size labels are -100), so the loss rewards
    carrying context through memory. A trailing piece with no supervised position is dropped."""
    samples = []
    for path in map(Path, paths):
        if not path.is_file():
            raise fail(path, "no such file (text data)", DataError)
        try:
            text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
        except (OSError, UnicodeDecodeError) as e:
            raise fail(path, f"cannot read as UTF-8 text ({e})", DataError) from None
        ids = _encode_long(tokenizer, text)
        for start in range(0, len(ids), max_tokens):
            piece = ids[start:start + max_tokens]
            labels = [piece[t + 1] if t >= chunk_size else IGNORE for t in range(len(piece) - 1)] + [IGNORE]
            if any(y != IGNORE for y in labels):
                samples.append(Sample(piece, labels))
    if not samples:
        raise DataError(f"{', '.join(map(str, paths))}: no text longer than one chunk ({chunk_size} tokens)")
    return samples


def _encode_long(tokenizer, text: str, piece_chars: int = 200_000) -> list[int]:
    # Tokenize a book in paragraph-aligned pieces: one call on megabytes of text is slow and warns.
    ids, start = [], 0
    while start < len(text):
        end = len(text) if start + piece_chars >= len(text) else text.find("\n\n", start + piece_chars)
        end = len(text) if end < 0 else end + 2
        ids += tokenizer.encode(text[start:end], add_special_tokens=False)
        start = end
    return ids


# ---- synthetic QA -------------------------------------------------------------------------------

def qa_sample(tokenizer, item: SyntheticSample) -> Sample:
    """A synthetic item as a chat: user = context + blank line + question, assistant = answer.
    Loss on the answer tokens and the end-of-turn token right after them; they sit at the very end,
    after the long context. Unlike METHOD.md 8.2 (the end marker is never a target), the end is
    supervised here: a pass key is only right if the model stops after it, and a model trained
    without it runs on with more digits."""
    messages = [{"role": "user", "content": item.context + "\n\n" + item.question},
                {"role": "assistant", "content": item.answer}]
    text, spans = assistant_spans(messages, tokenizer)
    ids, supervised = tokens_in_spans(tokenizer, text, spans)
    return Sample(ids, shift_labels(ids, supervise_end_of_turn(tokenizer, ids, supervised)))


def supervise_end_of_turn(tokenizer, ids: Sequence[int], supervised: Sequence[bool]) -> list[bool]:
    """`supervised` with the end-of-turn token (one generation stops on: <|im_end|>, eos, ...)
    after the last supervised token marked too, when it is there."""
    from comet_models.runtime import stop_ids  # the tokens generation stops on

    out = list(supervised)
    last = max((t for t, s in enumerate(out) if s), default=None)
    if last is not None and last + 1 < len(ids) and ids[last + 1] in stop_ids(tokenizer):
        out[last + 1] = True
    return out


class SyntheticSamples:
    """An endless, indexable family of synthetic samples: item k depends only on (seed, k).

    `make(rng, context_tokens, count_tokens)` builds the text item; lengths are total token counts
    (template included) drawn uniformly from `lengths` per item; a sample never exceeds its length.
    """

    def __init__(self, tokenizer, make: Callable, lengths: Sequence[int], seed: int, name: str):
        self.tokenizer, self.make, self.lengths, self.seed, self.name = tokenizer, make, list(lengths), seed, name
        self._overhead = len(qa_sample(tokenizer, SyntheticSample("", "", "")).input_ids)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def __getitem__(self, k: int) -> Sample:
        return self.drawn(k)[1]

    def item(self, k: int) -> SyntheticSample:
        """The text-level item (context, question, answer) that sample k renders."""
        return self.drawn(k)[0]

    def drawn(self, k: int) -> tuple[SyntheticSample, Sample]:
        """Item k and its rendered sample."""
        rng = random.Random(f"{self.seed}:{self.name}:{k}")
        length = rng.choice(self.lengths)
        # Answer and question tokens are unknown until drawn: reserve some, then trim if over.
        budget = length - self._overhead - 24
        for _ in range(4):
            state = rng.getstate()
            item = self.make(rng, max(budget, 1), self.count_tokens)
            sample = qa_sample(self.tokenizer, item)
            if len(sample.input_ids) <= length or budget <= 1:
                break
            budget -= len(sample.input_ids) - length
            rng.setstate(state)
        return item, sample

    def __iter__(self) -> Iterator[Sample]:
        k = 0
        while True:
            yield self[k]
            k += 1


def passkey_samples(tokenizer, filler: FillerText, lengths: Sequence[int], seed: int = 0,
                    depth: Sequence[float] = (0.0, 1.0), name: str = "passkey", keys: str = "any") -> SyntheticSamples:
    """Pass-key samples of the given total token lengths, keys of kind `keys` (`draw_key`) at depths
    uniform in `depth`."""
    def make(rng, n_tokens, count_tokens):
        return passkey_sample(rng, filler, n_tokens, rng.uniform(depth[0], depth[1]), count_tokens, keys)
    return SyntheticSamples(tokenizer, make, lengths, seed, name)


def recall_samples(tokenizer, filler: FillerText, lengths: Sequence[int], seed: int = 0,
                   depth: Sequence[float] = (0.0, 1.0), name: str = "recall",
                   passage_tokens: Sequence[int] = (32, 96)) -> SyntheticSamples:
    """Recall samples (repeat a quoted passage) of the given total token lengths, the passage at
    depths uniform in `depth`, `passage_tokens` long."""
    def make(rng, n_tokens, count_tokens):
        return recall_sample(rng, filler, n_tokens, rng.uniform(depth[0], depth[1]), tuple(passage_tokens),
                             count_tokens)
    return SyntheticSamples(tokenizer, make, lengths, seed, name)


def babilong_samples(tokenizer, tasks: Sequence[BabiTask], filler: FillerText, lengths: Sequence[int],
                     seed: int = 0, name: str = "babilong") -> SyntheticSamples:
    """BABILong-style samples from the given bAbI tasks (one drawn per sample)."""
    if not tasks:
        raise DataError("babilong samples need at least one bAbI task file")

    def make(rng, n_tokens, count_tokens):
        return babilong_sample(rng, tasks[rng.randrange(len(tasks))], filler, n_tokens, count_tokens)
    return SyntheticSamples(tokenizer, make, lengths, seed, name)


# ---- mixing -------------------------------------------------------------------------------------

@dataclass
class Source:
    """A weighted source for MixedStream: get(k) is the k-th sample drawn from it."""

    name: str
    weight: float
    get: Callable[[int], Sample]


def cycle(samples: Sequence[Sample], seed: int, name: str) -> Callable[[int], Sample]:
    """get(k) over a finite list: epochs of a fresh seeded shuffle each."""
    if not samples:
        raise DataError(f"data source {name} has no samples")
    n, cache = len(samples), {}

    def get(k: int) -> Sample:
        epoch = k // n
        if epoch not in cache:
            cache.clear()
            cache[epoch] = random.Random(f"{seed}:{name}:epoch{epoch}").sample(range(n), n)
        return samples[cache[epoch][k % n]]
    return get


class MixedStream:
    """An endless mixture of sources in proportion to their weights, deterministic for a seed.

    `position` counts samples drawn; MixedStream(sources, seed, position=p) yields exactly what the
    stream that had drawn p samples would yield next (the source picks are replayed, which is
    cheap: no sample is built).
    """

    def __init__(self, sources: Sequence[Source], seed: int, position: int = 0):
        if not sources:
            raise DataError("no data sources (data.sources is empty)")
        self.sources, self.seed = list(sources), seed
        self.seek(position)

    def seek(self, position: int) -> None:
        """Continue as if `position` samples had been drawn."""
        self._rng = random.Random(f"mix:{self.seed}")
        self._counts = [0] * len(self.sources)
        self.position = 0
        for _ in range(position):
            self._pick()

    def _pick(self) -> tuple[int, int]:
        i = self._rng.choices(range(len(self.sources)), weights=[s.weight for s in self.sources], k=1)[0]
        k = self._counts[i]
        self._counts[i] += 1
        self.position += 1
        return i, k

    def __iter__(self) -> MixedStream:
        return self

    def __next__(self) -> Sample:
        i, k = self._pick()
        return self.sources[i].get(k)


def curriculum_lengths(data: DataSection, chunk_size: int) -> list[int]:
    """Synthetic sample lengths: k * chunk_size for k in [min_chunks, max_chunks], capped at max_tokens;
    with data.whole_chunks false, every length from (min_chunks - 1) * chunk_size + 64 to that cap."""
    if not data.whole_chunks:
        top = min(data.max_chunks * chunk_size, data.max_tokens)
        return list(range(min((data.min_chunks - 1) * chunk_size + 64, top), top + 1))
    return sorted({min(k * chunk_size, data.max_tokens) for k in range(data.min_chunks, data.max_chunks + 1)})


def build_stream(data: DataSection, tokenizer, chunk_size: int, position: int = 0) -> MixedStream:
    """The recipe's `data` section as a MixedStream (finite sources are tokenized up front, so a
    bad file fails before training starts)."""
    lengths = curriculum_lengths(data, chunk_size)
    sources = []
    for i, spec in enumerate(data.sources):
        name = f"{i}:{spec.kind}"
        if spec.kind == "chat_jsonl":
            get = cycle([s for p in spec.files() for s in chat_samples(p, tokenizer, data.max_tokens)], data.seed, name)
        elif spec.kind == "text":
            get = cycle(text_samples(spec.files(), tokenizer, data.max_tokens, chunk_size), data.seed, name)
        elif spec.kind == "passkey":
            get = passkey_samples(tokenizer, FillerText(spec.filler), lengths, data.seed, spec.depth, name,
                                  spec.keys).__getitem__
        elif spec.kind == "recall":
            get = recall_samples(tokenizer, FillerText(spec.filler), lengths, data.seed, spec.depth, name,
                                 spec.passage_tokens).__getitem__
        else:
            tasks = [BabiTask(p) for p in spec.files()]
            get = babilong_samples(tokenizer, tasks, FillerText(spec.filler), lengths, data.seed, name).__getitem__
        sources.append(Source(name, spec.weight, get))
    return MixedStream(sources, data.seed, position)
