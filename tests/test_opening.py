"""The opening chunk (runtime.open_document): the chat frame's prefix and a lead-in line, closed as a
chunk of their own once the document overflows one chunk, so no document text takes the first,
ungated write of the global memory."""
from dataclasses import replace

import torch

from comet_models.chunked import Engine
from comet_models.runtime import LEAD_IN, feed, generate, new_state, open_document
from comet_models.state import MemoryState
from tests.tiny import comet_model, sample

PREFIX = [3, 1, 4, 1, 5]


class CharTokenizer:
    """Stands in for a tokenizer: one id per word, inside the tiny models' vocabulary."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [sum(map(ord, w)) % 90 for w in text.split()]}


def _opening() -> list[int]:
    return PREFIX + CharTokenizer()(LEAD_IN)["input_ids"]


def _first_token(model, closed: list[list[int]], open_ids: list[int]) -> int:
    """Greedy first token after closing `closed` chunks one by one and reading `open_ids` open."""
    eng, cfg = Engine(model), model.comet_config
    mems = eng.empty_memory()
    for ids in closed:
        _, _, mems = eng.run_chunk(torch.tensor([ids]), mems)
    h, ctx, _ = eng.run_chunk(torch.tensor([open_ids]), mems, closed=False)
    logits = eng.logits(h[:, ctx.layout.text_pos[-1]])[0]
    logits[[cfg.placeholder_id, cfg.temp_beacon_id] + cfg.global_beacon_ids] = float("-inf")
    return int(logits.argmax())


def test_long_document_starts_in_the_second_chunk():
    model = comet_model("llama", chunk_size=32)
    C, opening = model.comet_config.chunk_size, _opening()
    doc = sample(3 * C - 5, seed=1)[0][0].tolist()
    state = feed(model, open_document(model, CharTokenizer(), PREFIX), doc)
    # the opening alone, then whole chunks of the document; its open tail stays pending
    assert (state.chunks, state.opening, state.tokens) == (1 + 2, 0, len(opening) + len(doc))
    assert state.pending == doc[2 * C:]
    prompt = [7, 8, 9]
    got = next(generate(model, state, prompt, max_new_tokens=1))
    want = _first_token(model, [opening, doc[:C], doc[C:2 * C]], doc[2 * C:] + prompt)
    assert got == want
    # ...which is not what reading the opening and the document as one stream gives
    old = feed(model, new_state(model), opening + doc)
    assert old.chunks != state.chunks or not torch.equal(old.global_state, state.global_state)


def test_document_within_one_chunk_is_read_as_before():
    model = comet_model("qwen3", chunk_size=32)
    C, opening = model.comet_config.chunk_size, _opening()
    doc = list(range(10, 10 + C - len(opening) - 2))
    state = feed(model, open_document(model, CharTokenizer(), PREFIX), doc)
    assert (state.chunks, state.pending, state.opening) == (0, opening + doc, len(opening))
    old = feed(model, new_state(model), opening + doc)
    short = [7, 8]  # opening + doc + prompt fill exactly one chunk: one open chunk, as before
    assert list(generate(model, state, short, max_new_tokens=4)) == list(generate(model, old, short, max_new_tokens=4))
    # a prompt that overflows the chunk closes the opening first, not the opening's first C tokens
    long = list(range(20, 30))
    got = next(generate(model, state, long, max_new_tokens=1))
    assert got == _first_token(model, [opening], doc + long)


def test_feeding_in_pieces_after_the_opening_equals_feeding_at_once():
    model = comet_model("mistral", chunk_size=32)
    doc = sample(32 * 4 + 3, seed=2)[0][0].tolist()
    start = open_document(model, CharTokenizer(), PREFIX)
    whole, st = feed(model, start, doc), start
    for a in range(0, len(doc), 5):
        st = feed(model, st, doc[a:a + 5])
    assert st.sha256() == whole.sha256()
    assert (st.tokens, st.chunks, st.pending, st.opening) == (whole.tokens, whole.chunks, whole.pending, 0)


def test_opening_survives_a_saved_state(tmp_path):
    model = comet_model("llama", chunk_size=32)
    start = feed(model, open_document(model, CharTokenizer(), PREFIX), [11, 12, 13])
    start.save(tmp_path / "s.safetensors", 32)
    loaded = MemoryState.load(tmp_path / "s.safetensors")
    assert (loaded.opening, loaded.pending, loaded.sha256()) == (start.opening, start.pending, start.sha256())
    # the opening is part of the digest: the same tokens pending without it are another state
    assert replace(loaded, opening=0).sha256() != loaded.sha256()
    doc = sample(80, seed=3)[0][0].tolist()
    assert feed(model, loaded, doc).sha256() == feed(model, start, doc).sha256()
