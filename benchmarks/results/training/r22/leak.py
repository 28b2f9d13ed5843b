"""Does the lead's prose (the opening of *Ulysses*) come out in answers? The same 1,500-token book excerpt
(characters 200,000 on of three books) read without and with the lead, then summarized (`comet
summarize`'s instruction and repetition penalty) and asked who is named in it; the answers are searched
for the lead's names and words.

    python benchmarks/results/training/r22/leak.py [TOKENS] [MODEL] > benchmarks/results/training/r22/leak.jsonl
"""
import json
import os
import re
import sys
from pathlib import Path

import torch

from comet_cli.commands.read import REPETITION_PENALTY, SUMMARIZE_INSTRUCTION
from comet_models.convert import load_comet
from comet_models.runtime import chat_frame, feed, generate, lead_ids, new_state, stop_ids, with_lead

WORDS = re.compile(r"Mulligan|Stephen|Dedalus|Kinch|razor|lather|Introibo|stairhead|dressinggown|gunrest|jesuit|"
                   r"tower", re.I)
BOOKS = {"moby": "moby_dick_pg2701.txt", "pride": "pride_and_prejudice_pg1342.txt", "war": "war_and_peace_pg2600.txt"}
QUESTIONS = ((SUMMARIZE_INSTRUCTION, REPETITION_PENALTY["summary"]),
             ("Who are the people named in the document?", REPETITION_PENALTY["answer"]))


def main() -> None:
    n_tok = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
    model, tok = load_comet(sys.argv[2] if len(sys.argv) > 2 else "runs/r16-mixed/model", dtype=torch.bfloat16)
    C, stop = model.comet_config.chunk_size, stop_ids(tok)
    data = Path(os.environ.get("COMET_DATA", Path(__file__).resolve().parents[5] / "shared" / "data"))
    for name, file in BOOKS.items():
        text = (data / "books" / file).read_text(encoding="utf-8")
        ids = tok(text[200000:200000 + 12 * n_tok], add_special_tokens=False)["input_ids"][:n_tok]
        for question, penalty in QUESTIONS:
            prefix, suffix = chat_frame(tok, question)
            out = {}
            for mode in ("plain", "lead"):
                state = feed(model, new_state(model), prefix)
                state = with_lead(state, lead_ids(tok, C, 0)) if mode == "lead" else state
                state = feed(model, state, ids)
                toks = list(generate(model, state, suffix, 120, stop=stop, repetition_penalty=penalty))
                out[mode] = tok.decode(toks, skip_special_tokens=True).strip()
            print(json.dumps({"book": name, "q": question[:30], "tokens": n_tok, **out,
                              "leak": {m: WORDS.findall(t) for m, t in out.items()}}), flush=True)


if __name__ == "__main__":
    main()
