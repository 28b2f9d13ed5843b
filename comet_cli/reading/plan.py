"""What a read will cost before it runs: tokens, chunks, time and peak memory.

Tokens are estimated from the readers' `count_estimate` at CHARS_PER_TOKEN characters per token
(English prose with a Llama/SmolLM-style BPE; logs and code run somewhat higher). Speed is
measured: one chunk through the loaded model after a warm-up chunk. Memory is constant in the
input length, so the peak is what the process holds after that chunk (model, one state, one
chunk's activations) plus the KV cache of the final chunk while answering.
"""
from __future__ import annotations

import math
import resource
import time
from dataclasses import asdict, dataclass

from comet_cli.readers import SourceFile, count_estimate

CHARS_PER_TOKEN = 4.0
# `comet ask --reads auto` (its default): three reads of an input of more than one chunk and at most
# this many tokens, one read of a longer one (benchmarks/results/training/r21/README.md: three reads
# found 93 of 100 keys at 4k-16k against 77 for one, 27 of 30 at 64k against 21; 256k and 1M barely measured).
AUTO_READS = 3
AUTO_READS_MAX_TOKENS = 65_536
# `--beam`: an answer of at most ANSWER_SEARCH_TOKENS tokens is picked among the whole answers of a beam
# this wide (comet_models.search; its SHORT_ANSWER, kept equal by a test, without importing torch here)
ANSWER_BEAM = 4
ANSWER_SEARCH_TOKENS = 16
SAMPLE_TEXT = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, "
               "must be in want of a wife. ")


@dataclass
class Plan:
    sources: int
    pages: int | None
    estimated_chars: int | None
    estimated_tokens: int | None
    chunks: int | None
    chunk_size: int
    tokens_per_second: float
    predicted_seconds: float | None
    model_bytes: int
    state_bytes: int
    chunk_activation_bytes: int
    answer_cache_bytes: int
    measured_rss_bytes: int
    peak_memory_bytes: int
    cached_state: str | None = None
    reads: int = 1

    def as_dict(self) -> dict:
        return asdict(self)


def estimate_size(sources: list[SourceFile], password: str | None = None, warn=lambda m: None):
    """(characters, pages) summed over sources; characters None when any size is unknown (stdin)."""
    chars, pages, unknown = 0, 0, False
    for src in sources:
        try:
            c, p = count_estimate(src, password)
        except Exception as e:  # an unopenable file is skipped by the read too; say so here
            warn(f"{src.path}: size unknown ({str(e).splitlines()[0]})")
            c, p = None, None
        unknown = unknown or c is None
        chars += c or 0
        pages += p or 0
    return (None if unknown else chars), (pages or None)


def estimate_tokens(chars: int | None) -> int | None:
    return None if chars is None else math.ceil(chars / CHARS_PER_TOKEN)


def auto_reads(tokens: int | None, chunk_size: int) -> int:
    """How many reads `--reads auto` makes of an input of `tokens` tokens: AUTO_READS for one longer than
    a chunk (it closes one) up to AUTO_READS_MAX_TOKENS, else one (inside one chunk there is no boundary
    to shift; tokens None, stdin, can be read only once)."""
    if tokens is None or tokens <= chunk_size or tokens > AUTO_READS_MAX_TOKENS:
        return 1
    return AUTO_READS


def lead_first(reads: int | str, tokens: int | None, summary: bool = False) -> bool:
    """Whether the first read of `comet ask` (or, with summary, `comet summarize`) takes the lead
    (runtime.reads_with_lead: a document read once). `--reads auto` counts tokens after its first read, so
    that read goes by the size estimate: the lead when it is past AUTO_READS_MAX_TOKENS or unknown (stdin).
    A summary's one read (its default) goes by the same rule, so it shares ask's first cached state.
    Inputs within one chunk never take it."""
    from comet_models.runtime import reads_with_lead

    if reads == "auto" or (summary and reads == 1):
        return tokens is None or tokens > AUTO_READS_MAX_TOKENS
    return reads_with_lead(int(reads))


def measure_tokens_per_second(model, tokenizer) -> float:
    """Time one chunk through the model, after one warm-up chunk."""
    from comet_models.runtime import feed, new_state

    C = model.comet_config.chunk_size
    ids = tokenizer(SAMPLE_TEXT * (C // 8 + 1), add_special_tokens=False)["input_ids"]
    ids = (ids * (C // max(len(ids), 1) + 1))[:C]
    state = feed(model, new_state(model), ids + ids[:1])  # closes one chunk (warm-up)
    t = time.perf_counter()
    feed(model, state, ids)
    return C / max(time.perf_counter() - t, 1e-6)


def memory_parts(model, max_new_tokens: int = 256) -> dict:
    """Bytes of the model, one state, one chunk's activations, and the final chunk's KV cache."""
    cfg, conf = model.comet_config, model.config
    el = next(model.parameters()).element_size()
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    L, H = conf.num_hidden_layers, conf.hidden_size
    G, BT, C, s = cfg.global_slots, cfg.temp_budget, cfg.chunk_size, cfg.temp_stride
    state_bytes = L * (G + BT) * H * el + BT
    P = 2 * G + BT + C + (-(-C // s) if s > 0 and BT > 0 else 0)  # positions in one chunk
    heads = conf.num_attention_heads
    inter = getattr(conf, "intermediate_size", 4 * H)
    kv_heads = getattr(conf, "num_key_value_heads", heads)
    head_dim = getattr(conf, "head_dim", None) or H // heads
    # one layer at a time: hidden + q/k/v/o, the attention scores, the MLP's up/gate; plus logits
    activations = el * (P * (6 * H + 3 * inter) + heads * P * P + conf.vocab_size)
    kv = 2 * L * kv_heads * head_dim * (P + max_new_tokens) * el
    return {"model_bytes": model_bytes, "state_bytes": state_bytes, "chunk_activation_bytes": activations,
            "answer_cache_bytes": kv}


def peak_rss_bytes() -> int:
    """The process's peak resident set so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def make_plan(model, tokenizer, sources, password=None, max_new_tokens=256, warn=lambda m: None,
              reads: int | str = 1) -> Plan:
    """The plan of a read; with reads > 1 (`--reads`), time counts every read and the answer's cache
    one final chunk per read. reads="auto" plans what `--reads auto` would do with the estimate."""
    chars, pages = estimate_size(sources, password, warn)
    tokens = estimate_tokens(chars)
    C = model.comet_config.chunk_size
    if reads == "auto":
        reads = auto_reads(tokens, C)
    rate = measure_tokens_per_second(model, tokenizer)
    parts = memory_parts(model, max_new_tokens)
    rss = peak_rss_bytes()
    return Plan(
        sources=len(sources), pages=pages, estimated_chars=chars, estimated_tokens=tokens,
        chunks=None if tokens is None else math.ceil(tokens / C), chunk_size=C,
        tokens_per_second=round(rate, 1),
        predicted_seconds=None if tokens is None else round(reads * tokens / rate, 1),
        measured_rss_bytes=rss, peak_memory_bytes=rss + parts["answer_cache_bytes"]
        + (reads - 1) * (parts["answer_cache_bytes"] + parts["state_bytes"]),
        reads=reads, **parts)
