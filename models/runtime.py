"""Streaming runtime: feed tokens chunk by chunk into a MemoryState; generate from it.

Only the memory (fixed size) and the partial last chunk survive between chunks: no KV cache,
hidden states or token history is kept, so memory use does not grow with the input. A KV cache
exists only for the final, open chunk (document tail + instruction) while decoding
(METHOD.md section 9). Beacons keep their training-time cadence while decoding: after every
`s` text tokens of the last chunk, a temp beacon is fed together with the token it follows.
"""
from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import torch

from .chunked import Engine
from .layout import attention_mask
from .state import MemoryState

SENTINEL = "\u2063COMET_DOCUMENT\u2063"


def new_state(model, batch: int = 1) -> MemoryState:
    """An empty memory for `model` (nothing read yet)."""
    cfg, conf = model.comet_config, model.config
    dtype = next(model.parameters()).dtype
    return MemoryState.empty(conf.num_hidden_layers, conf.hidden_size, cfg.global_slots, cfg.temp_budget,
                             batch, dtype, getattr(model, "comet_fingerprint", ""))


@torch.inference_mode()
def _close_chunks(eng: Engine, state: MemoryState, text: list[int],
                  on_chunk: Callable[[MemoryState], None] | None) -> MemoryState:
    mems = state.layer_memories(eng.device, next(eng.model.parameters()).dtype)
    C = eng.cfg.chunk_size
    chunks = state.chunks
    for a in range(0, len(text), C):
        ids = torch.tensor([text[a:a + C]], dtype=torch.long)
        _, _, mems = eng.run_chunk(ids, mems, closed=True)
        chunks += 1
        if on_chunk is not None:
            on_chunk(state.with_layer_memories(mems, chunks=chunks, pending=[]))
    return state.with_layer_memories(mems, chunks=chunks)


def feed(model, state: MemoryState, token_ids: Sequence[int],
         on_chunk: Callable[[MemoryState], None] | None = None) -> MemoryState:
    """Read token_ids after `state`; returns the new state (the input state is not modified).

    Full chunks are closed into memory as soon as more than chunk_size tokens are pending, so
    the open tail (1..chunk_size tokens) stays available for the final chunk of generation."""
    C = model.comet_config.chunk_size
    pending = state.pending + list(token_ids)
    tokens = state.tokens + len(token_ids)
    if state.lead and len(pending) > C:  # a chunk closes: the held-back lead goes in first
        pending = pending[:state.lead_at] + state.lead + pending[state.lead_at:]
        tokens += len(state.lead)
        state = replace(state, lead=[], lead_at=0)
    n_close = ((len(pending) - 1) // C) * C if pending else 0
    if n_close == 0:
        return replace(state, pending=pending, tokens=tokens)
    new = _close_chunks(Engine(model), state, pending[:n_close], on_chunk)
    return replace(new, pending=pending[n_close:], tokens=tokens)


def chat_frame(tokenizer, instruction: str, system: str | None = None) -> tuple[list[int], list[int]]:
    """Token ids before and after the document for one user turn of the backbone's chat template.

    The document goes at the start of the user message and the instruction at its end, so the
    document can be read (and its memory reused) before the instruction is known."""
    if getattr(tokenizer, "chat_template", None):
        messages = ([{"role": "system", "content": system}] if system else []) + \
            [{"role": "user", "content": SENTINEL + "\n\n" + instruction}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        before, after = text.split(SENTINEL, 1)
    else:
        before, after = "", "\n\n" + instruction + "\n\nAnswer:"
    enc = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    prefix = enc(before)
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None and getattr(tokenizer, "add_bos_token", False) and (not prefix or prefix[0] != bos):
        prefix = [bos] + prefix
    return prefix, enc(after)


def read_shifts(chunk_size: int, reads: int) -> list[int]:
    """How far each of `reads` reads of one document moves its chunk boundaries: 0 (the plain read),
    then evenly spread over a chunk (chunk 256, 3 reads: 0, 85, 170)."""
    if reads < 1:
        raise ValueError(f"reads must be at least 1, not {reads}")
    return [k * chunk_size // reads for k in range(reads)]


@functools.lru_cache(maxsize=8)
def _shift_text_ids(tokenizer) -> tuple[int, ...]:
    text = (Path(__file__).parent / "shift_prose.txt").read_text(encoding="utf-8")
    return tuple(tokenizer(text, add_special_tokens=False)["input_ids"])


def shift_ids(tokenizer, n: int) -> list[int]:
    """The first n tokens of the prose a shifted read puts between the chat prefix and the document (the
    opening of Joyce's *Ulysses*, public domain, repeated if needed), so every chunk boundary in the
    document falls n tokens later than in the plain read. Prose like the books the default was trained
    on, and no document's own text (benchmarks/results/training/r21/README.md)."""
    ids = _shift_text_ids(tokenizer)
    return [] if n <= 0 else list(ids * (n // len(ids) + 1))[:n]


def read_prefixes(tokenizer, prefix_ids: Sequence[int], chunk_size: int, reads: int) -> list[list[int]]:
    """What each of `reads` reads feeds before the document: the chat prefix, then its shift's prose
    (read_shifts, shift_ids). The first is the plain read's prefix itself."""
    return [list(prefix_ids) + shift_ids(tokenizer, n) for n in read_shifts(chunk_size, reads)]


def lead_ids(tokenizer, chunk_size: int, shift: int) -> list[int]:
    """The lead a read with this shift holds back (with_lead): the next chunk_size tokens of its shift
    prose. A document longer than the first chunk's room then starts one chunk later, its boundaries
    where the read puts them, and none of it is read in the first chunk, where the shipped default
    loses exact details (benchmarks/results/training/r22/README.md)."""
    return shift_ids(tokenizer, chunk_size + shift)[shift:]


def reads_with_lead(reads: int) -> bool:
    """Whether a document read `reads` times starts after the lead (lead_ids): when it is read once. One
    read with the lead finds 109 of the grid's 130 keys at 4k-64k against 98 without it (depth 0 22 of 26
    against 12); three reads find 92 of 100 at 4k-16k with it against 93 without, and a new user's first
    asks 9 of 12 against 11 (the lead cut two 2k-token files' keys to four digits), so several reads
    keep the layout they were measured with (benchmarks/results/training/r22/README.md)."""
    return reads == 1


def with_lead(state: MemoryState, lead: Sequence[int]) -> MemoryState:
    """`state` holding `lead` back: if what is fed next closes a chunk, feed puts the lead before it,
    right after what is pending now (the chat prefix); an input that fits in the open chunk with the
    prompt is read as if there were no lead."""
    return replace(state, lead=list(lead), lead_at=len(state.pending))


def stop_ids(tokenizer) -> set[int]:
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    for tok in ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|endoftext|>"):
        i = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(i, int) and i != tokenizer.unk_token_id and i is not None:
            ids.add(i)
    return ids


def final_chunk(model, state: MemoryState, prompt_ids: Sequence[int], max_new_tokens: int,
                eng: Engine | None = None, doc_tail: int | None = None) -> tuple[MemoryState, list[int]]:
    """The state to answer from and the text of the final (open) chunk: the pending document tail
    plus prompt_ids.

    After a document longer than a chunk, the final chunk leaves room for the answer, as every
    training sample did (its answer's tokens lay inside the chunk): min(max_new_tokens, chunk_size // 2)
    positions. With none left (a full chunk of document before a pass-key question), r16 answered four
    of the key's five digits at every depth (benchmarks/results/training/r16/README.md). `doc_tail`
    keeps at most that many document tokens beside the prompt: with 24, r16 finds more planted keys
    (10/12 at 16k against 6/12 with a whole chunk of document there) but turns summaries and
    multiple-choice answers into numbers, so the default (None) keeps as many as fit. What does not
    fit is closed into (a copy of) the memory first; a prompt longer than the room keeps its place and
    the answer gets less. A document that fits in one chunk with the prompt is read in that
    chunk whole, however long the answer."""
    C = model.comet_config.chunk_size
    text = state.pending + list(prompt_ids)
    fits = C
    if state.chunks > 0 or len(text) > C:  # a long document; the prompt itself is never pushed out
        fits = max(C - min(max_new_tokens, C // 2), min(len(prompt_ids), C))
        if doc_tail is not None:  # at most doc_tail tokens of the document share the prompt's chunk
            fits = min(fits, len(prompt_ids) + doc_tail)
    if len(text) <= fits:
        return state, text
    over = len(text) - fits
    return _close_chunks(eng or Engine(model), state, text[:over], None), text[over:]


class _Decoder:
    """The final chunk read once (final_chunk's layout), then one token at a time with the training-time
    beacon cadence: what generate samples from and score teacher-forces through."""

    def __init__(self, model, state: MemoryState, prompt_ids: Sequence[int], max_new_tokens: int,
                 doc_tail: int | None = None):
        from transformers import DynamicCache

        self.eng = eng = Engine(model)
        cfg = eng.cfg
        state, text = final_chunk(model, state, prompt_ids, max_new_tokens, eng, doc_tail=doc_tail)
        mems = state.layer_memories(eng.device, next(model.parameters()).dtype)
        self.cache = DynamicCache()
        h, ctx, _ = eng.run_chunk(torch.tensor([text]), mems, closed=False, cache=self.cache)
        self.logits = eng.logits(h[:, ctx.layout.text_pos[-1]])[0]
        self.banned = torch.tensor([cfg.placeholder_id, cfg.temp_beacon_id] + cfg.global_beacon_ids[: cfg.global_slots])
        self.length, self.n_text = ctx.layout.length, len(text)
        self.stride = cfg.temp_stride if cfg.uses_temp_memory else 0

    def fork(self) -> "_Decoder":
        """A copy that decodes on by itself (its own KV cache; the read final chunk is not rerun)."""
        twin = copy.copy(self)
        twin.cache = copy.deepcopy(self.cache)
        return twin

    def step(self, tok: int) -> None:
        """Feed `tok` (and a temp beacon after every `stride` text tokens); self.logits is then the next's."""
        self.n_text += 1
        step = [tok, self.eng.cfg.temp_beacon_id] if self.stride and self.n_text % self.stride == 0 else [tok]
        h = _decode(self.eng, torch.tensor([step], device=self.eng.device), self.length, self.cache)
        self.length += len(step)
        self.logits = self.eng.logits(h[:, 0])[0]


@torch.inference_mode()
def generate(model, state: MemoryState | Sequence[MemoryState], prompt_ids: Sequence[int], max_new_tokens: int = 256,
             stop: set[int] | frozenset = frozenset(), temperature: float = 0.0, top_p: float = 1.0,
             repetition_penalty: float = 1.0, seed: int = 0, doc_tail: int | None = None) -> Iterator[int]:
    """Yield generated token ids, reading the memory of `state` (which is left unchanged).

    The final chunk is laid out by final_chunk (doc_tail=None: as much document as fits). Several
    states (reads of one document whose chunk boundaries fall in different places) answer together:
    every token is picked from the sum of their log-probabilities, and fed to each of them."""
    states = [state] if isinstance(state, MemoryState) else list(state)
    if not states:
        raise ValueError("generate needs at least one memory state")
    decs = [_Decoder(model, st, prompt_ids, max_new_tokens, doc_tail) for st in states]
    gen = torch.Generator().manual_seed(seed)
    produced = []
    for _ in range(max_new_tokens):
        logits = decs[0].logits if len(decs) == 1 else _joint_logprobs(decs)
        tok = _pick(logits, decs[0].banned, produced, temperature, top_p, repetition_penalty, gen)
        if tok in stop:
            return
        yield tok
        produced.append(tok)
        for dec in decs:
            dec.step(tok)


def _joint_logprobs(decs: Sequence[_Decoder]) -> torch.Tensor:
    """Summed next-token log-probabilities of several decoders (banned tokens excluded from each)."""
    total = _logprobs(decs[0])
    for dec in decs[1:]:
        total = total + _logprobs(dec).to(total.device)
    return total


@torch.inference_mode()
def score(model, state: MemoryState, prompt_ids: Sequence[int], answer_ids: Sequence[int],
          max_new_tokens: int = 256, doc_tail: int | None = None, stop: Iterable[int] = ()) -> float:
    """log p(answer_ids) after prompt_ids, read exactly as generate reads (same final chunk for the same
    max_new_tokens, same beacon cadence, the same tokens banned): teacher-forced, in nats. With `stop`,
    plus the log-probability of ending there (the likeliest of those end-of-turn tokens)."""
    dec = _Decoder(model, state, prompt_ids, max_new_tokens, doc_tail)
    end = sorted(stop)
    total = 0.0
    for i, tok in enumerate(answer_ids):
        total += float(_logprobs(dec)[tok])
        if i < len(answer_ids) - 1 or end:
            dec.step(tok)
    if end:
        total += float(_logprobs(dec)[end].max())
    return total


def _logprobs(dec: _Decoder) -> torch.Tensor:
    logits = dec.logits.float().clone()
    logits[dec.banned.to(logits.device)] = float("-inf")
    return torch.log_softmax(logits, -1)


@torch.inference_mode()
def answer(model, state: MemoryState | Sequence[MemoryState], prompt_ids: Sequence[int], max_new_tokens: int = 256,
           stop: set[int] | frozenset = frozenset(), doc_tail: int | None = None, width: int = 1,
           first: Sequence[int] | None = None, **sampling) -> list[int]:
    """The answer's token ids from one read of a document or several (`--reads`): ranked_answers' first."""
    return ranked_answers(model, state, prompt_ids, max_new_tokens, stop, doc_tail, width, first, **sampling)[0][0]


@torch.inference_mode()
def ranked_answers(model, state: MemoryState | Sequence[MemoryState], prompt_ids: Sequence[int],
                   max_new_tokens: int = 256, stop: set[int] | frozenset = frozenset(), doc_tail: int | None = None,
                   width: int = 1, first: Sequence[int] | None = None, **sampling) -> list[tuple[list[int], float | None]]:
    """The candidate answers (`weigh`) with their log-probability (answer and end of turn, summed over
    the reads), best first by `ranking`; a lone candidate is not scored (None)."""
    cands, totals, _ = weigh(model, state, prompt_ids, max_new_tokens, stop, doc_tail, width, first, **sampling)
    if totals is None:
        return [(cands[0], None)]
    return [(cands[i], totals[i]) for i in ranking(cands, totals, max_new_tokens, bool(stop))]


@torch.inference_mode()
def weigh(model, state: MemoryState | Sequence[MemoryState], prompt_ids: Sequence[int], max_new_tokens: int = 256,
          stop: set[int] | frozenset = frozenset(), doc_tail: int | None = None, width: int = 1,
          first: Sequence[int] | None = None, **sampling) -> tuple[list[list[int]], list[float] | None, int]:
    """(candidates, their summed log-probabilities or None for a lone one, how many of the first
    candidates greedy decoding gave): the rest come from the search, so ranking the first n alone gives
    the answer without it.

    The candidates are generate's answer (over all the states together; `first` when it is already
    known), with several states each read's own answer, and with `width` > 1 the answers of a beam
    search when the first one is short (models/search.py). Greedy joint decoding alone commits to one
    token at a time and can end a five-digit key after four digits that every read would score lower as
    a whole (benchmarks/results/training/r21/README.md)."""
    from .search import beam_search, horizon, searchable

    states = [state] if isinstance(state, MemoryState) else list(state)
    run = lambda sts: list(generate(model, sts, prompt_ids, max_new_tokens, stop, doc_tail=doc_tail,  # noqa: E731
                                    **sampling))
    cands: list[list[int]] = [list(first) if first is not None else run(states)]
    for c in ([run([st]) for st in states] if len(states) > 1 else []):
        if c not in cands:
            cands.append(c)
    n_greedy = len(cands)
    known: dict[tuple[int, ...], float] = {}  # the beam's answers come scored
    if stop and searchable(cands[0], max_new_tokens, width, sampling):
        known = dict((tuple(c), lp) for c, lp in beam_search(model, states, prompt_ids, width, horizon(max_new_tokens),
                                                             stop, max_new_tokens, doc_tail))
        cands += [list(c) for c in known if list(c) not in cands]
    if len(cands) == 1:
        return cands, None, n_greedy
    totals = [known[tuple(c)] if tuple(c) in known else
              sum(score(model, st, prompt_ids, c, max_new_tokens, doc_tail, stop) for st in states) for c in cands]
    return cands, totals, n_greedy


def choose(cands: Sequence[Sequence[int]], totals: Sequence[float], max_new_tokens: int, scored_stop: bool) -> int:
    """Which candidate answer several reads (or a search) give: ranking's first."""
    return ranking(cands, totals, max_new_tokens, scored_stop)[0]


def ranking(cands: Sequence[Sequence[int]], totals: Sequence[float], max_new_tokens: int,
            scored_stop: bool) -> list[int]:
    """Candidate indices, best first: first those that say something and end (an end-of-turn token
    within max_new_tokens), then the highest total log-probability per scored token (the answer's, plus
    the end of turn when scored_stop); ties keep the candidates' order. Per token, because a sum prefers
    the shorter of two answers for its length alone and an empty one most of all; on the r21 pass keys
    (4 and 5 digits) it picks as the sum does (93 of 100)."""
    def rank(i):
        c = cands[i]
        return (len(c) > 0, len(c) < max_new_tokens, totals[i] / max(len(c) + scored_stop, 1))
    return sorted(range(len(cands)), key=rank, reverse=True)


def _decode(eng: Engine, ids: torch.Tensor, past: int, cache) -> torch.Tensor:
    """Plain cached decoding through the base layers (no memory is written while decoding)."""
    h = eng.embed(ids)
    q = ids.shape[1]
    pos = torch.arange(past, past + q, device=ids.device).unsqueeze(0)
    rot, masks = {}, {}
    for l, layer in enumerate(eng.layers):
        lt, w = eng.layer_types[l], eng.windows[l]
        if lt not in rot:
            rot[lt] = eng.rotary(h, pos, lt)
        if w not in masks:
            masks[w] = attention_mask(q, past + q, w, h.device)
        out = layer.base_layer(h, attention_mask=masks[w], position_ids=pos, position_embeddings=rot[lt],
                               use_cache=True, **{eng.cache_kw: cache})
        h = out[0] if isinstance(out, (tuple, list)) else out
    return h


def _pick(logits, banned, produced, temperature, top_p, repetition_penalty, gen) -> int:
    logits = logits.float().clone()
    logits[banned.to(logits.device)] = float("-inf")
    if repetition_penalty != 1.0 and produced:
        prev = torch.tensor(sorted(set(produced)), device=logits.device)
        vals = logits[prev]
        logits[prev] = torch.where(vals > 0, vals / repetition_penalty, vals * repetition_penalty)
    if temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(logits / temperature, -1)
    if top_p < 1.0:
        sp, si = probs.sort(descending=True)
        keep = sp.cumsum(0) - sp < top_p
        probs = torch.zeros_like(probs).scatter(0, si[keep], sp[keep])
    return int(torch.multinomial(probs / probs.sum(), 1, generator=gen))
