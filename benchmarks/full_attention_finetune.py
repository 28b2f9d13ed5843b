"""Baseline (c'): the base model with plain full attention, fine-tuned on CoMeT's training data.

The paper's strongest baseline: the same backbone, the same LoRA (rank, targets, learning rate) and
the same data mix as the shipped default's recipe (pass-key, BABILong-style facts, book text), but
no memory: every sample (at most `data.max_tokens`, well inside the 8192-token window) is read with
ordinary causal attention. The result is a CoMeT folder whose memory is unused, so `comet eval
--method truncate --model runs/full-attention-ft/model` evaluates it within its window.

    python benchmarks/full_attention_finetune.py --steps 150   # -> runs/full-attention-ft/model

It starts from the untrained conversion used by quality rows (a)-(d) and writes the training log
(metrics.jsonl) beside the model. Not resumable: it is a baseline, minutes long on this CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default=str(ROOT / "recipes" / "smollm2-default.yaml"))
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--min-chunks", type=int, default=2, help="sample length range, in the recipe's chunks")
    ap.add_argument("--max-chunks", type=int, default=8)
    ap.add_argument("--out", default=str(ROOT / "runs" / "full-attention-ft"))
    args = ap.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    from quality_table import untrained_dir

    from comet_cli.finetune.checkpoint import export_model
    from comet_cli.finetune.config import load_recipe
    from comet_cli.finetune.data import IGNORE, build_stream
    from comet_cli.finetune.sources import prepare_data_section
    from comet_cli.finetune.train import lr_factor
    from comet_cli.finetune.trainable import TrainableSet, add_lora
    from comet_cli.modelref import load_model

    recipe = load_recipe(args.recipe, [f"data.min_chunks={args.min_chunks}", f"data.max_chunks={args.max_chunks}",
                                       f"train.steps={args.steps}"])
    src = untrained_dir()
    model, tok, _ = load_model(str(src))
    for p in model.parameters():
        p.requires_grad_(False)
    tr = recipe.trainable
    add_lora(model, tr.lora_rank, tr.lora_alpha, list(tr.lora_targets))
    lora = [(n, p) for n, p in model.named_parameters() if "lora_" in n]
    for _, p in lora:
        p.requires_grad_(True)
    tset = TrainableSet("lora", other=lora)
    opt = torch.optim.AdamW(tset.parameters(), lr=recipe.optim.lr, weight_decay=0.0)
    data = prepare_data_section(recipe.data, Path(args.recipe).resolve().parent)
    stream = build_stream(data, tok, model.comet_config.chunk_size)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = (out / "metrics.jsonl").open("w")
    model.train()
    t0, tokens = time.time(), 0
    for step in range(1, args.steps + 1):
        lr = recipe.optim.lr * lr_factor(recipe, step)  # the same schedule as comet finetune
        for g in opt.param_groups:
            g["lr"] = lr
        s = next(stream)
        ids, labels = torch.tensor([s.input_ids]), torch.tensor(s.labels)
        logits = model(input_ids=ids).logits[0]
        loss = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tset.parameters(), recipe.optim.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens += len(s.input_ids)
        rec = {"step": step, "loss": round(loss.item(), 4), "lr": lr, "tokens": len(s.input_ids),
               "tokens_per_s": round(tokens / (time.time() - t0), 1)}
        log.write(json.dumps(rec) + "\n")
        log.flush()
        if step % 10 == 0:
            print(json.dumps(rec), file=sys.stderr, flush=True)
    model.eval()
    training = (f"baseline (c'): full attention, LoRA r{tr.lora_rank} on {','.join(tr.lora_targets)}, "
                f"{args.steps} steps of {Path(args.recipe).name} data, {args.min_chunks}-{args.max_chunks} chunks")
    written = export_model(model, tset, src, out, training)
    print(json.dumps(written))


if __name__ == "__main__":
    main()
