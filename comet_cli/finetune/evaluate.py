"""Periodic evaluation during fine-tuning: pass-key accuracy at a few lengths (`evaluate_now`,
called by the training loop every `eval.every` steps and at the last one).

Each item is read the way `comet ask` reads a document: the chat template's text before the
document, then the document (book text with a hidden 5-digit key), fed chunk by chunk into memory;
then the question and the assistant header are the prompt of the final, open chunk. An answer is
right when the first 5-digit number it contains is the key. Items depend only on (seed, length,
index) and greedy decoding draws no random numbers, so evaluating never changes the training run.
"""
from __future__ import annotations

import random
import re
from collections.abc import Sequence

import torch

from comet_cli.finetune.synthetic import FillerText, passkey_sample

FIVE_DIGITS = re.compile(r"(?<!\d)\d{5}(?!\d)")


def filler_files(sources) -> list[str]:
    """Book files for the background text: the first passkey/babilong source's filler, else the
    files of a text source; [] if the recipe has neither."""
    for spec in sources:
        if spec.filler:
            return list(spec.filler)
    for spec in sources:
        if spec.kind == "text":
            return spec.files()
    return []


def answer_of(text: str) -> str | None:
    m = FIVE_DIGITS.search(text)
    return m.group(0) if m else None


def passkey_accuracy(model, tokenizer, filler: FillerText, lengths: Sequence[int], samples: int, seed: int = 0,
                     rank: int = 0, world: int = 1, max_new_tokens: int = 12) -> dict[int, tuple[int, int]]:
    """{length: (correct, evaluated)} over this rank's share of the items (item i % world == rank);
    sum the pairs over ranks for the totals."""
    from comet_models.runtime import chat_frame, feed, generate, new_state, stop_ids

    count = lambda s: len(tokenizer.encode(s, add_special_tokens=False))  # noqa: E731
    stop = stop_ids(tokenizer)
    was_training = model.training
    model.eval()
    out = {}
    try:
        for length in lengths:
            correct = done = 0
            for i in range(rank, samples, world):
                rng = random.Random(f"eval:{seed}:{length}:{i}")
                item = passkey_sample(rng, filler, length, None, count)
                prefix, suffix = chat_frame(tokenizer, item.question)
                context = tokenizer.encode(item.context, add_special_tokens=False)
                state = feed(model, new_state(model), prefix + context)
                with torch.inference_mode():
                    ids = list(generate(model, state, suffix, max_new_tokens=max_new_tokens, stop=stop))
                correct += answer_of(tokenizer.decode(ids)) == item.answer
                done += 1
            out[length] = (correct, done)
    finally:
        model.train(was_training)
    return out


def evaluate_now(run, step: int, final: bool = False) -> dict:
    """Pass-key accuracy {"passkey@L": acc} if this step is an evaluation step (or the last one,
    `final`), else {}."""
    e = run.recipe.eval
    due = (e.every and step % e.every == 0) or step == run.recipe.train.steps or final
    if not due or not e.samples or not e.passkey_lengths:
        return {}
    files = filler_files(run.data.sources)
    if not files:
        return {}
    scores = passkey_accuracy(run.model, run.tokenizer, FillerText(files), e.passkey_lengths, e.samples,
                              seed=run.recipe.train.seed, rank=run.dist.rank, world=run.dist.world)
    if run.dist.world > 1:
        t = torch.tensor([v for L in e.passkey_lengths for v in scores[L]], dtype=torch.float64, device=run.device)
        torch.distributed.all_reduce(t, group=run.dist.group)
        scores = {L: (t[2 * i].item(), t[2 * i + 1].item()) for i, L in enumerate(e.passkey_lengths)}
    return {f"passkey@{L}": round(c / max(n, 1), 4) for L, (c, n) in scores.items()}
