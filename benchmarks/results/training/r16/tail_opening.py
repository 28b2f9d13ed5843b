"""With an opening chunk, how many document tokens share the question's chunk.

Grid samples (as `comet eval passkey --depths 5`) read with an opening chunk (the chat frame's prefix
and LEAD_IN closed as a chunk of their own, the document from the next chunk on); before asking, the
pending document tail is cut to the last `t` tokens (the rest closed as a chunk); t=full keeps the
whole tail (a full chunk at the grid's lengths). The committed results were recorded before
`runtime.final_chunk` kept room for the answer; with it, `full` leaves 12 positions free. A cut tail is
`generate(..., doc_tail=t)`.

    python benchmarks/results/training/r16/tail_opening.py runs/r16-first/model --lengths 4096 --tails full,24,48,96
"""
import argparse, json, os, sys, time
from pathlib import Path
import torch

from opening import opened  # this folder's scripts: the opening chunk


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model"); ap.add_argument("--lengths", default="4096"); ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--tails", default="full,24"); ap.add_argument("--depths", default="0,0.25,0.5,0.75,1.0")
    a = ap.parse_args()
    from comet_cli.eval.methods import Answerer
    from comet_cli.eval.passkey import grid_sample
    from comet_models.convert import load_comet
    from comet_models.runtime import feed, generate
    model, tok = load_comet(a.model, dtype=torch.bfloat16)
    ans = Answerer(model, tok, "comet")
    data = Path(os.environ.get("COMET_DATA", "../shared/data"))
    books = sorted(str(p) for p in (data / "books").glob("*.txt"))
    for length in [int(x) for x in a.lengths.split(",")]:
        for s in range(a.samples):
            item, needle, fill = grid_sample(ans, books, length, 0, s)
            prefix, suffix = ans.frame(item.question)
            for d in [float(x) for x in a.depths.split(",")]:
                pos = round(d * len(fill))
                t0 = time.time()
                st = feed(model, opened(model, tok, prefix), fill[:pos] + needle + fill[pos:])
                for t in a.tails.split(","):
                    tail = None if t == "full" else int(t)
                    ids = list(generate(model, st, suffix, max_new_tokens=12, stop=set(ans.stop), doc_tail=tail))
                    text = tok.decode(ids, skip_special_tokens=True)
                    print(json.dumps({"length": length, "sample": s, "depth": d, "tail": t, "pending": len(st.pending),
                                      "key": item.answer, "answer": text.strip(), "correct": item.correct(text),
                                      "seconds": round(time.time() - t0, 1)}), flush=True)


if __name__ == "__main__":
    main()
