"""Which opening chunk? The grid's depth-0 samples (key in the document's first chunk) read three ways:

- frame: the chat frame's prefix alone closed as a short first chunk, the document from chunk 1;
- neutral: the prefix and a lead-in line repeated to fill the first chunk (one stream, as lead_in.py);
- frame+neutral: the prefix and the lead-in line once, closed as a short first chunk (the opening
  chunk tried in commit 3661c3c and reverted: see README.md).

The document gives up as many tokens at its end as the opening adds (as in lead_in.py).

    python benchmarks/results/training/r16/opening.py runs/r14-dil16/model 4096,16384 frame,neutral,frame+neutral \
        > benchmarks/results/training/r16/opening_dil16.jsonl
"""
import json, os, sys, time
from pathlib import Path
import torch
from dataclasses import replace

LEAD_IN = "The document begins below. Read it closely: questions about any part of it will follow.\n\n"


def neutral_tokens(tok, n: int) -> list[int]:
    """LEAD_IN repeated to exactly n tokens: a lead-in that fills the rest of a chunk."""
    line = tok(LEAD_IN, add_special_tokens=False)["input_ids"]
    return (line * (n // len(line) + 1))[:n]


def lead_chunk(model, tok):
    """The memory after one full chunk of the chat frame's prefix and LEAD_IN repeated (one token past
    the chunk closes it, and stays pending): r17's seed and r18 frame_grid.py's seeded start."""
    from comet_models.runtime import chat_frame, feed, new_state

    prefix, _ = chat_frame(tok, "x")
    state = feed(model, new_state(model), prefix + neutral_tokens(tok, model.comet_config.chunk_size - len(prefix) + 1))
    assert state.chunks == 1, state.chunks
    return state


def closed(model, ids: list[int]):
    """The memory after `ids` closed as a (short) first chunk of their own."""
    from comet_models.chunked import Engine
    from comet_models.runtime import _close_chunks, new_state

    return replace(_close_chunks(Engine(model), new_state(model), ids, None), tokens=len(ids))


def opened(model, tok, prefix: list[int]):
    """The memory after the opening chunk: `prefix` and LEAD_IN closed as a (short) chunk of their own."""
    return closed(model, prefix + tok(LEAD_IN, add_special_tokens=False)["input_ids"])


def main():
    model_dir, lengths, variants = sys.argv[1], [int(x) for x in sys.argv[2].split(",")], sys.argv[3].split(",")
    from comet_cli.eval.methods import Answerer
    from comet_cli.eval.passkey import grid_sample
    from comet_models.convert import load_comet
    from comet_models.runtime import feed, generate, new_state
    model, tok = load_comet(model_dir, dtype=torch.bfloat16)
    ans = Answerer(model, tok, "comet")
    data = Path(os.environ.get("COMET_DATA", "../shared/data"))
    books = sorted(str(p) for p in (data / "books").glob("*.txt"))
    C = model.comet_config.chunk_size
    neutral = tok(LEAD_IN, add_special_tokens=False)["input_ids"]
    for length in lengths:
        for s in range(3):
            item, needle, fill = grid_sample(ans, books, length, 0, s)
            prefix, suffix = ans.frame(item.question)
            for v in variants:
                t0 = time.time()
                if v == "frame":   # frame alone as chunk 0; doc loses len(prefix) at its end
                    st = feed(model, closed(model, prefix), needle + fill[:len(fill) - len(prefix)])
                elif v == "neutral":  # frame + repeated neutral sentence fills chunk 0
                    lead = neutral_tokens(tok, C - len(prefix))
                    st = feed(model, new_state(model), prefix + lead + needle + fill[:len(fill) - len(lead)])
                elif v == "frame+neutral":  # frame + neutral sentence once, closed short
                    st = feed(model, opened(model, tok, prefix), needle + fill[:len(fill) - len(prefix) - len(neutral)])
                ids = list(generate(model, st, suffix, max_new_tokens=12, stop=set(ans.stop), doc_tail=None))
                text = tok.decode(ids, skip_special_tokens=True)
                print(json.dumps({"length": length, "sample": s, "variant": v, "prefix": len(prefix), "key": item.answer,
                                  "answer": text.strip(), "correct": item.correct(text), "seconds": round(time.time() - t0, 1)}), flush=True)


if __name__ == "__main__":
    main()
