"""Each of three reads' own answer, the joint answer and the pick (runtime.answer) for first_ask.py's
files, with the lead in every read and without it, as `comet ask` answers (max_new_tokens 256).

    python benchmarks/results/training/r22/first_ask_reads.py runs/r16-mixed/model 2048:0 2048:0.25
    # LENGTH:DEPTH ... ; prints one line per file and layout
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # benchmarks/
from first_ask import book_text, make_file  # noqa: E402

from comet_cli.finetune.synthetic import PASSKEY_QUESTION  # noqa: E402
from comet_models.convert import load_comet  # noqa: E402
from comet_models.runtime import (answer, chat_frame, feed, generate, lead_ids, new_state,  # noqa: E402
                                  read_prefixes, stop_ids, with_lead)

MAX_NEW_TOKENS = 256  # `comet ask`'s default: the final chunk keeps room for 128 tokens (final_chunk)


def main() -> None:
    torch.set_num_threads(1)
    model, tok = load_comet(sys.argv[1])
    C, text, stop = model.comet_config.chunk_size, book_text(), stop_ids(tok)
    prefix, suffix = chat_frame(tok, PASSKEY_QUESTION)
    for spec in sys.argv[2:]:
        length, depth = int(spec.split(":")[0]), float(spec.split(":")[1])
        with tempfile.TemporaryDirectory() as tmp:
            path, key = make_file(Path(tmp), text, length, depth, 0)
            doc = tok(path.read_text(), add_special_tokens=False)["input_ids"]
        for lead in (False, True):
            states = []
            for ids in read_prefixes(tok, prefix, C, 3):
                st = feed(model, new_state(model), ids)
                st = with_lead(st, lead_ids(tok, C, len(ids) - len(prefix))) if lead else st
                states.append(feed(model, st, doc))
            own = [tok.decode(list(generate(model, [s], suffix, MAX_NEW_TOKENS, stop))) for s in states]
            joint = tok.decode(list(generate(model, states, suffix, MAX_NEW_TOKENS, stop)))
            pick = tok.decode(answer(model, states, suffix, MAX_NEW_TOKENS, stop))
            print(f"{length} depth {depth}: key {key}, lead {lead}, {states[0].tokens} tokens: reads {own}, "
                  f"joint {joint!r}, answer {pick!r}", flush=True)


if __name__ == "__main__":
    main()
