"""Short answers searched whole: a beam over whole answers instead of one greedy token at a time.

Greedy decoding commits to the likeliest next token. When the memory holds a key's digits but not
surely their order, the likeliest first digit can start an answer that is, as a whole, less likely
than the key: on the pass-key grid's 4k samples the shipped default answered "33597" for 93597
(log p -1.57 against -0.99 for the key) and "97775" for 29775 (-1.10 against -0.94)
(benchmarks/results/training/r23/). An answer that ends within SHORT_ANSWER tokens (a number, a name, a
choice) is therefore picked among the greedy answer and the answers a beam of BEAM finds, by
runtime.choose over the reads' summed log-probabilities; a longer answer (a summary, an explanation)
is the greedy one, as before, and streams.

The beam keeps the `width` likeliest unfinished answers (summed log-probabilities over the reads'
decoders), sets aside every answer with an end of turn among its `width` likeliest next tokens, and
stops at `horizon` tokens, after `width` answers have ended, or when the best ended answer beats every
unfinished one (log-probabilities only fall as an answer grows). It costs `width` decoding steps per
token per read, and the answers it finds come scored: a few seconds on one CPU thread, nothing beside
reading the document.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import torch

from .state import MemoryState

BEAM = 4  # answers kept per step (`comet ask --beam`; 1: greedy only)
SHORT_ANSWER = 16  # tokens: a greedy answer that ends within this many is searched


@torch.inference_mode()
def beam_search(model, states: Sequence[MemoryState], prompt_ids: Sequence[int], width: int, horizon: int,
                stop: Iterable[int], max_new_tokens: int = 256,
                doc_tail: int | None = None) -> list[tuple[list[int], float]]:
    """The answers (token ids, the end of turn left off) that end within `horizon` tokens in a beam of
    `width` over the summed log-probabilities of `states`, likeliest first, each with its log-probability
    as runtime.score gives it summed over the reads (the answer's tokens plus each read's likeliest end of
    turn). Each read is laid out as runtime.generate lays it out for `max_new_tokens` (the final chunk
    leaves room for the answer)."""
    from .runtime import _Decoder, _logprobs

    stop = sorted(set(stop))
    if width < 1 or horizon < 1 or not stop:
        return []
    start = [_Decoder(model, st, prompt_ids, max_new_tokens, doc_tail) for st in states]
    beams: list[tuple[float, list[int], list]] = [(0.0, [], start)]
    ended: dict[tuple[int, ...], float] = {}
    for step in range(horizon):
        grown = []
        for total, toks, decs in beams:
            lps = [_logprobs(d) for d in decs]
            joint = lps[0] if len(lps) == 1 else sum(lp.to(lps[0].device) for lp in lps)
            top = torch.topk(joint, width)
            if any(int(i) in stop for i in top.indices):  # an end of turn is among the likeliest: it ends here
                ended.setdefault(tuple(toks), total + sum(float(lp[stop].max()) for lp in lps))
            grown += [(total + float(v), toks + [int(i)], decs) for v, i in zip(top.values, top.indices)
                      if int(i) not in stop]
        grown.sort(key=lambda g: -g[0])
        beams = grown[:width]
        best_ended = max(ended.values(), default=float("-inf"))
        if not beams or len(ended) >= width or best_ended >= beams[0][0] or step == horizon - 1:
            break
        beams = [(total, toks, [_advance(d, toks[-1]) for d in decs]) for total, toks, decs in beams]
    return sorted(([list(t), lp] for t, lp in ended.items()), key=lambda e: -e[1])


def _advance(dec, tok: int):
    """A copy of decoder `dec` (its own KV cache) that has read `tok`."""
    twin = dec.fork()
    twin.step(tok)
    return twin


def searchable(first: Sequence[int], max_new_tokens: int, width: int, sampling: dict) -> bool:
    """Whether the greedy answer `first` is searched: it ended within SHORT_ANSWER tokens (before
    max_new_tokens), the beam is wider than one, and decoding is greedy (no temperature)."""
    return (width > 1 and len(first) <= SHORT_ANSWER and len(first) < max_new_tokens
            and sampling.get("temperature", 0.0) <= 0)


def horizon(max_new_tokens: int) -> int:
    """Beam steps: answers of up to SHORT_ANSWER tokens and their end of turn, within max_new_tokens."""
    return min(max_new_tokens, SHORT_ANSWER + 1)


def stream_answer(model, states: Sequence[MemoryState], prompt_ids: Sequence[int], max_new_tokens: int,
                  stop: set[int], width: int = BEAM, **sampling) -> Iterator[int]:
    """The answer's token ids as `comet ask` shows them. One read: greedy tokens are held back until the
    answer is longer than SHORT_ANSWER tokens, then stream; an answer that ends sooner is searched
    (runtime.answer) and comes whole. Several reads: runtime.answer's pick, whole."""
    from .runtime import answer, generate

    states = list(states)
    if len(states) > 1 or width <= 1:
        yield from (answer(model, states, prompt_ids, max_new_tokens, stop, width=width, **sampling)
                    if len(states) > 1 else generate(model, states[0], prompt_ids, max_new_tokens, stop, **sampling))
        return
    held: list[int] = []
    tokens = generate(model, states[0], prompt_ids, max_new_tokens, stop, **sampling)
    for tok in tokens:
        held.append(tok)
        if len(held) > SHORT_ANSWER:  # a long answer: greedy, streamed from here on
            yield from held
            yield from tokens
            return
    yield from answer(model, states, prompt_ids, max_new_tokens, stop, width=width, first=held, **sampling)
