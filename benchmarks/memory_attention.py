"""Where does the answer's chunk look? Attention mass on the memory slots vs the chunk's first token.

After reading a 4-chunk recall sample (Ulysses, held out of training), the attention weights of
every text query of the last chunk are recomputed from each layer's own q/k projections and rotary
tables (captured by a hook; SDPA never returns weights) and summed over the 32 global slots, the
temp slots and the chunk's first text token, then averaged over heads and queries. A memory that
is read shows up as mass on the slots; a model that ignores its memory parks it elsewhere.

    python benchmarks/memory_attention.py --models runs/default-s1/model runs/recall/model
    # -> benchmarks/results/memory_attention.{json,md}
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BOOK = ROOT.parent / "shared" / "data" / "books" / "ulysses_pg4300.txt"
RESULTS = ROOT / "benchmarks" / "results"


@torch.no_grad()
def attention_mass(model_dir: str, seed: int) -> dict:
    from comet_cli.finetune.data import recall_samples
    from comet_cli.finetune.synthetic import FillerText
    from comet_models.chunked import Engine
    from comet_models.convert import load_comet
    from comet_models.layout import split_chunks

    model, tok = load_comet(model_dir)
    eng = Engine(model)
    sample = recall_samples(tok, FillerText([BOOK]), [1024], seed=seed, depth=(0.08, 0.08))[0]
    ids = torch.tensor([sample.input_ids])
    captured, hooks = {}, []
    for l, layer in enumerate(eng.layers):
        def pre(mod, args, kwargs, l=l):
            captured[l] = (kwargs.get("hidden_states", args[0] if args else None), kwargs["position_embeddings"])
        hooks.append(layer.base_layer.self_attn.register_forward_pre_hook(pre, with_kwargs=True))
    mems, start = eng.empty_memory(), 0
    for n in split_chunks(ids.shape[1], model.comet_config.chunk_size):
        _, ctx, mems = eng.run_chunk(ids[:, start:start + n], mems, closed=True)
        start += n
    for h in hooks:
        h.remove()
    lay, rows = ctx.layout, []
    for l, layer in enumerate(eng.layers):
        x, (cos, sin) = captured[l]
        at = layer.base_layer.self_attn
        rotate = sys.modules[type(at).__module__].apply_rotary_pos_emb  # the family's own rotary
        b, t, _ = x.shape
        q = at.q_proj(x).view(b, t, -1, at.head_dim).transpose(1, 2)
        k = at.k_proj(x).view(b, t, -1, at.head_dim).transpose(1, 2)
        q, k = rotate(q, k, cos, sin)
        k = k.repeat_interleave(q.shape[1] // k.shape[1], 1)
        w = (q @ k.transpose(-1, -2)) * at.scaling
        w = w.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
        wt = w[0][:, lay.text_pos]  # heads x text queries x keys
        g0 = lay.n_sink
        rows.append({"layer": l, "sink": wt[..., :g0].sum(-1).mean().item(),
                     "global": wt[..., g0:g0 + lay.n_global].sum(-1).mean().item(),
                     "temp": wt[..., g0 + lay.n_global:lay.slot_end].sum(-1).mean().item(),
                     "first_text": wt[..., lay.text_pos[0]].mean().item()})
    mean = {key: round(sum(r[key] for r in rows) / len(rows), 3) for key in ("sink", "global", "temp", "first_text")}
    return {"mean": mean, "layers": [{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in rows],
            "n_sink": lay.n_sink, "n_global": lay.n_global, "n_temp": lay.n_temp}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", required=True, help="CoMeT model folders (a run's model/)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=str(RESULTS / "memory_attention"))
    args = ap.parse_args()
    res = {"seed": args.seed, "models": {m: attention_mass(m, args.seed) for m in args.models}}
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    lines = ["# Attention of the answer's chunk: memory slots vs the chunk's first text token", "",
             "Mean over 30 layers, heads and the text queries of the last of 4 chunks (a recall sample, Ulysses). "
             f"Command: `python benchmarks/memory_attention.py --models {' '.join(args.models)}`; per layer in the JSON.", "",
             "| model | sink token | 32 global slots | temp slots | first text token |", "|---|---:|---:|---:|---:|"]
    for m, r in res["models"].items():
        sink = f"{r['mean']['sink']:.3f}" if r["n_sink"] else "-"
        lines.append(f"| {m} | {sink} | {r['mean']['global']:.3f} | {r['mean']['temp']:.3f} | "
                     f"{r['mean']['first_text']:.3f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
