"""One read of the grid's pass-key samples with `pad` tokens of prose between the chat prefix and the
document (the shift prose, the opening of *Ulysses*), forked at the grid's depths like `comet eval`.

    pad 256 (a whole chunk, "F"): the document starts one chunk later with its boundaries where the
            product's plain read has them: only what the first chunk holds changes. This is `--lead`.
    pad -1  (fill the first chunk, "E"): the document starts on a chunk boundary, as r20's lead-in did:
            the first chunk changes and every boundary in the document moves by 232 tokens.

One JSON line per key: the answer of that read, beside the key.

    python benchmarks/results/training/r22/lead_read.py runs/r16-mixed/model 4096 0-9 0,0.25,0.5,0.75,1 256
"""
import json
import os
import sys
import time
from pathlib import Path

import torch

from comet_cli.eval.methods import Answerer
from comet_cli.eval.passkey import grid_sample
from comet_models.convert import load_comet
from comet_models.runtime import feed, generate, new_state, shift_ids


def main() -> None:
    model_dir, lengths, samples, depths = sys.argv[1:5]
    pad_arg = int(sys.argv[5]) if len(sys.argv) > 5 else -1
    model, tok = load_comet(model_dir, dtype=torch.bfloat16)
    ans = Answerer(model, tok, "comet")
    stop = set(ans.stop)
    C = model.comet_config.chunk_size
    data = Path(os.environ.get("COMET_DATA", Path(__file__).resolve().parents[5] / "shared" / "data"))
    books = sorted(str(p) for p in (data / "books").glob("*.txt"))
    first, last = (int(x) for x in samples.split("-"))
    decode = lambda ids: tok.decode(ids, skip_special_tokens=True).strip()  # noqa: E731
    for length in (int(x) for x in lengths.split(",")):
        for sample in range(first, last + 1):
            item, needle, fill = grid_sample(ans, books, length, 0, sample)
            prefix, suffix = ans.frame(item.question)
            pad = (-len(prefix)) % C if pad_arg < 0 else pad_arg
            trunk, done = feed(model, new_state(model), prefix + shift_ids(tok, pad)), 0
            for depth in (float(d) for d in depths.split(",")):
                t0 = time.time()
                pos = round(depth * len(fill))
                trunk, done = feed(model, trunk, fill[done:pos]), pos
                state = feed(model, trunk, needle + fill[pos:])
                a = decode(list(generate(model, state, suffix, max_new_tokens=12, stop=stop)))
                print(json.dumps({"length": length, "sample": sample, "depth": depth, "key": item.answer, "answer": a,
                                  "pad": pad, "right": a == item.answer, "seconds": round(time.time() - t0, 1)}),
                      flush=True)


if __name__ == "__main__":
    main()
