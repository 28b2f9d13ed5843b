"""The methods `comet eval` compares, all on the same backbone and the same prompt frame.

comet      the document streams through CoMeT memory chunk by chunk; the question ends the final
           chunk and the answer reads the memory (what `comet ask` does).
truncate   the base model, plain full attention, on the document cut to a window (head and tail
           kept, the middle dropped): the usual way to fit a long input.
sliding    StreamingLLM-style: attention sinks (the prompt's first tokens) plus the most recent
           tokens, at the memory budget of CoMeT (its chunk plus its state, counted in KV-cache
           tokens). This is the recompute variant: the kept tokens are re-encoded together.
mapreduce  the base model answers the question on each window-sized piece, then once more over
           the pieces' answers.

Baselines run the base weights of the given folder: pass an untrained conversion
(`comet convert --untrained`) to compare against the released backbone.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from comet_cli.eval.scoring import build_prompt
from comet_cli.eval.tasks import EvalItem

METHODS = ("comet", "truncate", "sliding", "mapreduce")
SINKS = 4


@dataclass
class Answerer:
    model: object
    tokenizer: object
    method: str
    window: int = 4096
    max_new_tokens: int = 128
    reads: int = 1  # comet: read each document this many times, chunk boundaries shifted, answer jointly
    # comet: a long document starts after a chunk of prose; None: as `comet ask`, with one read only
    lead: bool | None = None
    beam: int = 1  # comet: short answers searched whole with a beam this wide (models/search.py); 1: greedy

    def __post_init__(self):
        from comet_models.runtime import reads_with_lead, stop_ids

        if self.lead is None:
            self.lead = reads_with_lead(self.reads) and self.method == "comet"
        self.stop = sorted(stop_ids(self.tokenizer))
        cfg = self.model.comet_config
        self.banned = [cfg.placeholder_id, cfg.temp_beacon_id] + list(cfg.global_beacon_ids)
        self._states: dict = {}  # the last document's memory state

    @property
    def run_tag(self) -> str:
        """The method, plus the precision when not float32: result ids of `--out` files, so a
        bfloat16 run never takes a float32 row as done (float32 ids read as before). Rows answered
        with a beam carry +beamN (rows from before it have none)."""
        comet = self.method == "comet"
        tag = self.method + (f"+reads{self.reads}" if self.reads > 1 and comet else "")
        tag += "+lead" if self.lead and comet else ""  # rows read before leads have none
        tag += f"+beam{self.beam}" if self.beam > 1 and comet else ""
        dtype = next(self.model.parameters()).dtype
        return tag if dtype == torch.float32 else f"{tag}@{str(dtype).removeprefix('torch.')}"

    def answer_ids(self, states: list, suffix: list[int], max_new_tokens: int) -> tuple[list[int], list[int] | None, tuple]:
        """The answer's ids from the memories (runtime.answer with this beam) and, when the beam is on,
        also the answer without it (greedy, and with several reads the pick among their greedy answers),
        so one run measures both: the best of the candidates greedy decoding gave (runtime.weigh), which
        rank among themselves as they rank among all. Third: the weighed (candidates, totals), for key_scores."""
        from comet_models.runtime import ranking, weigh

        cands, totals, n_greedy = weigh(self.model, states, suffix, max_new_tokens, set(self.stop), width=self.beam)
        order = [0] if totals is None else ranking(cands, totals, max_new_tokens, True)
        plain = cands[next(i for i in order if i < n_greedy)]
        return cands[order[0]], (plain if self.beam > 1 else None), (cands, totals)

    def key_scores(self, states: list, suffix: list[int], key: str, correct, max_new_tokens: int,
                   weighed: tuple) -> dict:
        """How surely the memories hold `key`, from answer_ids' `weighed` on the same states: `key_lp`, the
        log-probability per token (nats; the key's tokens and an end of turn, summed over the reads, the
        scale runtime.ranking ranks answers on) of answering exactly the key, and `rival_lp`, the same for
        the likeliest wrong answer answer_ids weighed (None when every one was right). Right and wrong
        flip on a small change where the two are close; their difference moves smoothly, so two models
        compare on it read by read (benchmarks/results/training/r24/README.md)."""
        from comet_models.runtime import score

        cands, totals = weighed
        known = {} if totals is None else {tuple(c): t / (len(c) + 1) for c, t in zip(cands, totals)}

        def per_token(ids: list[int]) -> float:  # a weighed answer takes its total, not scored again
            if tuple(ids) in known:
                return known[tuple(ids)]
            total = sum(score(self.model, st, suffix, ids, max_new_tokens, stop=self.stop) for st in states)
            return total / (len(ids) + 1)

        rivals = [c for c in cands if not correct(self.tokenizer.decode(c, skip_special_tokens=True))]
        rival = max((per_token(c) for c in rivals), default=None)
        return {"key_lp": round(per_token(self.encode(key)), 4),
                "rival_lp": None if rival is None else round(rival, 4)}

    # -- shared pieces --------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def frame(self, instruction: str) -> tuple[list[int], list[int]]:
        from comet_models.runtime import chat_frame

        return chat_frame(self.tokenizer, instruction)

    def open(self, prefix: list[int]) -> list:
        """One memory per read, each after the frame's prefix and its shift (runtime.read_prefixes),
        holding its lead back (runtime.with_lead) unless lead is off."""
        from comet_models.runtime import feed, lead_ids, new_state, read_prefixes, with_lead

        C = self.model.comet_config.chunk_size
        states = []
        for ids in read_prefixes(self.tokenizer, prefix, C, self.reads):
            st = feed(self.model, new_state(self.model), ids)
            states.append(with_lead(st, lead_ids(self.tokenizer, C, len(ids) - len(prefix))) if self.lead else st)
        return states

    @torch.inference_mode()
    def full_attention(self, ids: list[int], max_new_tokens: int | None = None) -> str:
        """Greedy answer of the base model (memory layers pass straight through)."""
        x = torch.tensor([ids])
        out = self.model.generate(x, attention_mask=torch.ones_like(x), do_sample=False,
                                  max_new_tokens=max_new_tokens or self.max_new_tokens,
                                  eos_token_id=self.stop, pad_token_id=self.stop[0],
                                  suppress_tokens=self.banned)
        return self.tokenizer.decode(out[0, len(ids):], skip_special_tokens=True).strip()

    def room(self, prefix: list[int], suffix: list[int]) -> int:
        return max(self.window - len(prefix) - len(suffix) - self.max_new_tokens, 16)

    # -- methods --------------------------------------------------------------------------------
    def answer(self, item: EvalItem) -> str:
        return getattr(self, f"_{self.method}")(item)

    def _comet(self, item: EvalItem) -> str:
        """Questions on the same document reuse its memory state, as `comet ask` does: the
        document is read once (the frame before it does not depend on the question)."""
        from comet_models.runtime import answer, feed

        prefix, suffix = self.frame(build_prompt(item))
        key = hash((tuple(prefix), item.document))
        if key not in self._states:
            doc = self.encode(item.document)
            self._states = {key: [feed(self.model, st, doc) for st in self.open(prefix)]}
        states = self._states[key]
        ids = answer(self.model, states, suffix, self.max_new_tokens, set(self.stop), width=self.beam)
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def window_ids(self, prefix: list[int], doc: list[int], suffix: list[int]) -> list[int]:
        """The prompt a windowed baseline sees: truncate keeps the document's head and tail within
        the window; sliding keeps the attention sinks and the most recent tokens."""
        if self.method == "sliding":
            return prefix[:SINKS] + (prefix[SINKS:] + doc)[-same_memory_window(self.model):] + suffix
        room = self.room(prefix, suffix)
        if len(doc) > room:
            doc = doc[: room // 2] + doc[len(doc) - (room - room // 2):]
        return prefix + doc + suffix

    def _truncate(self, item: EvalItem) -> str:
        prefix, suffix = self.frame(build_prompt(item))
        return self.full_attention(self.window_ids(prefix, self.encode(item.document), suffix))

    _sliding = _truncate  # the same call; window_ids picks the window by method

    def _mapreduce(self, item: EvalItem) -> str:
        instruction = build_prompt(item)
        part_q = (f"{instruction}\n\nThis is one part of a longer document. Using only this part, write "
                  f"what it says that helps answer; if nothing, write 'nothing relevant'.")
        prefix, suffix = self.frame(part_q)
        doc, room = self.encode(item.document), self.room(prefix, suffix)
        notes = []
        for start in range(0, max(len(doc), 1), room):
            notes.append(self.full_attention(prefix + doc[start:start + room] + suffix,
                                             max_new_tokens=min(self.max_new_tokens, 96)))
        joined = "\n".join(f"Part {i + 1}: {n}" for i, n in enumerate(notes))
        prefix, suffix = self.frame(f"Notes taken part by part from a long document:\n{joined}\n\n{instruction}")
        return self.full_attention(prefix + suffix)


def same_memory_window(model) -> int:
    """KV-cache tokens that cost what CoMeT holds while reading: its chunk (text, beacons) plus
    its state of (global + temp) slots per layer, each a hidden-size vector; a cached token costs
    keys and values of every KV head."""
    cfg, conf = model.comet_config, model.config
    kv = 2 * conf.num_key_value_heads * getattr(conf, "head_dim", conf.hidden_size // conf.num_attention_heads)
    state_tokens = (cfg.global_slots + cfg.temp_budget) * conf.hidden_size // kv
    return cfg.chunk_size + state_tokens
