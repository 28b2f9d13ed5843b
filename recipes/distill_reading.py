"""Answers to questions about a passage, written by the base model reading it in plain context.

r13 dil8 (the shipped default when this was written) lost the base model's reading comprehension: asked
"Who has taken Netherfield Park?" right after the sentence that says so, it answers "bill smith" where
the base (and an untrained conversion, whose first chunk is the base) says "Bingley". Its training mix
ends every document question with a planted key, a bAbI word or a quoted passage, never with a question
about the text itself. These rows are the embedded SmolLM2-135M-Instruct's own greedy answers to generic
questions about book passages of 120-450 tokens (one or two chunks, where the base still reads well; it
confabulates more beyond) (self-distillation, as distill_summaries.py does for summaries), so a `kind:
chat_jsonl` source teaches the student to answer from the document as the base does, through its memory
when the passage spans more than one chunk.

    python recipes/distill_reading.py -n 240 -o recipes/data/distill-reading.jsonl
    python recipes/distill_reading.py --far-from recipes/data/distill-reading.jsonl \
        -o recipes/data/distill-reading-far.jsonl

--far-from makes the memory's version of each row that asks about a name: the same passage, question
and teacher answer, with 300-1,200 tokens of another training book between the passage and the
question, so the answer is one to five chunks back when the question comes (benchmarks/reading_qa.py's
"far" layout; the shipped default answers 11/12 of its questions next to the passage and 0/12 700
tokens later).

Passages come from the training books (Ulysses stays held out; benchmarks/reading_qa.py asks about
passages written for it, with Ulysses as the text between); answers keep their first two sentences, and an answer that loops or names someone the passage
does not is dropped. Rows are written one by one, so an interrupted run continues.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

from distill_summaries import BOOKS, chat_row, passages_done, repetitive, teacher_reply

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("COMET_DATA", ROOT.parent / "shared" / "data"))
GENERIC = ["Who are the people named in the text above?",
           "Where does the scene in the text above take place?",
           "Who speaks in the text above, and to whom?"]
ABOUT = ["What does {name} do in the text above?", "What is said about {name} in the text above?",
         "Who is {name}, according to the text above?"]
NOT_NAMES = set("""The This That These Those There Then When What Where Which While Who Why How And But
For Nor Yet Not Its His Her Their Our Your You She They Him Them We Mrs Miss Sir Lady Lord God
Chapter CHAPTER Project Gutenberg One Two Yes Now Well Oh Ah All Some Such If In On At As By
Of To With From Into After Before Upon Only Even So No Do Does Did Had Has Have Was Were Is Are
Let May Might Must Shall Should Will Would Can Could Very Here Every Each Both Either""".split())


def passages(n: int, books: list[str], tok, seed: int, tokens: tuple[int, int] = (120, 450)):
    """n (book, passage) pairs: token windows of `tokens` length (uniform), starting at a paragraph."""
    rng = random.Random(seed)
    texts = [(b, (DATA / "books" / b).read_text(encoding="utf-8").replace("\r\n", "\n")) for b in books]
    for k in range(n):
        name, text = texts[k % len(texts)]
        want = rng.randint(*tokens)
        start = text.find("\n\n", rng.randrange(len(text) // 20, len(text) - 20 * want)) + 2
        ids = tok.encode(text[start:start + 8 * want], add_special_tokens=False)[:want]
        yield name, tok.decode(ids).strip()


def main_name(passage: str) -> str | None:
    """The passage's most frequent capitalized word not at a sentence start (a name, usually), seen twice."""
    names = Counter(m.group(2) for m in re.finditer(r"([a-z,;] )([A-Z][a-z]{2,})\b", passage)
                    if m.group(2) not in NOT_NAMES)
    best = names.most_common(1)
    return best[0][0] if best and best[0][1] >= 2 else None


def first_sentences(text: str, n: int = 2) -> str:
    """The first n sentences of text, on one line (the teacher's answers drift and loop after them)."""
    after_end = r"(?<!\bMr\.)(?<!\bMrs\.)(?<!\bDr\.)(?<!\bSt\.)(?<!\b\d\.)(?<=[.!?])\s+(?!\d)"
    parts = re.split(after_end, " ".join(text.split()))
    return " ".join(parts[:n]).strip()


def grounded(answer: str, passage: str) -> bool:
    """True if answer stays in the Latin script and every capitalized word of it but the first (names,
    mostly) is in passage: the teacher sometimes answers with characters from another book."""
    latin = sum(c.isascii() for c in answer) >= 0.9 * len(answer)
    names = set(re.findall(r"\b[A-Z][a-z]{2,}\b", answer[1:])) - NOT_NAMES
    return latin and all(n in passage for n in names)


def question_for(passage: str, rng: random.Random) -> str:
    name = main_name(passage)
    if name and rng.random() < 0.6:
        return rng.choice(ABOUT).format(name=name)
    return rng.choice(GENERIC)


def rows(n: int, books: list[str], tok, seed: int):
    """(k, book, passage, question) for n passages; the question drawn from the passage's seed."""
    for k, (book, passage) in enumerate(passages(n, books, tok, seed)):
        yield k, book, passage, question_for(passage, random.Random(seed * 1_000_003 + k))


def far_rows(near: Path, tok, seed: int, tokens: tuple[int, int] = (300, 1200)):
    """The rows of `near` with a stretch of another training book between passage and question."""
    rng = random.Random(seed)
    books = {b: (DATA / "books" / b).read_text(encoding="utf-8") for b in BOOKS}
    for line in open(near, encoding="utf-8"):
        row = json.loads(line)
        user = row["messages"][0]["content"]
        passage, question = user.rsplit("\n\n", 1)
        if question in GENERIC:  # "the text above" would take in the gap too: only questions about a name
            continue
        other = rng.choice([b for b in BOOKS if b != row["book"]])
        text, want = books[other], rng.randint(*tokens)
        start = text.find("\n\n", rng.randrange(len(text) // 20, len(text) - 20 * want)) + 2
        gap = tok.decode(tok.encode(text[start:start + 8 * want], add_special_tokens=False)[:want]).strip()
        row["messages"][0]["content"] = f"{passage}\n\n{gap}\n\n{question}"
        yield {**row, "gap_book": other, "gap_tokens": want}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=240, help="number of passages")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--out", default=str(ROOT / "recipes" / "data" / "distill-reading.jsonl"))
    ap.add_argument("--far-from", default=None, metavar="NEAR.jsonl",
                    help="write the rows of NEAR.jsonl with other book text before the question (no model run)")
    args = ap.parse_args()
    if args.far_from:
        from transformers import AutoTokenizer

        from comet_models.convert import default_gguf

        gguf = default_gguf()  # the embedded model's tokenizer, as the teacher used
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        with open(args.out, "w", encoding="utf-8") as f:
            for row in far_rows(Path(args.far_from), tok, args.seed):
                f.write(json.dumps(row) + "\n")
        return
    from comet_models.convert import load_source

    model, tok = load_source(None)  # the embedded SmolLM2, plain full attention
    out = Path(args.out)
    done = passages_done(out)
    t0 = time.time()
    with open(out, "a", encoding="utf-8") as f:
        for k, book, passage, question in rows(args.n, BOOKS, tok, args.seed):
            if k < done:
                continue
            user = passage + "\n\n" + question
            answer = first_sentences(teacher_reply(model, tok, user, args.max_new_tokens))
            kept = bool(answer) and not repetitive(answer) and grounded(answer, passage)
            if kept:
                f.write(chat_row(user, answer, passage=k, book=book))
                f.flush()
            print(f"[distill-reading] {k + 1}/{args.n}  {time.time() - t0:.0f} s  "
                  f"{'kept' if kept else 'dropped'}  {question!r} -> {answer[:60]!r}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
