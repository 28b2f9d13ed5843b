"""Streaming runtime and memory-state files."""
import pytest
import torch
from safetensors.torch import save_file

from comet_cli.errors import StateError
from comet_models.runtime import feed, generate, new_state
from comet_models.state import FORMAT_VERSION, MemoryState
from tests.tiny import comet_model, sample


def _feed_chunks(model, n_chunks, seed=0):
    ids, _ = sample(16 * n_chunks + 3, seed=seed)
    return feed(model, new_state(model), ids[0].tolist())


def test_state_size_is_constant_in_the_number_of_chunks():
    model = comet_model("llama")
    a, b = _feed_chunks(model, 2), _feed_chunks(model, 50)
    assert (a.chunks, b.chunks) == (2, 50)
    assert a.tensor_bytes() == b.tensor_bytes()
    assert {k: v.shape for k, v in a._tensors(16).items()} == {k: v.shape for k, v in b._tensors(16).items()}


def test_fifo_in_state_stays_within_budget_and_is_marked_valid():
    model = comet_model("llama")  # 4 beacons per chunk, budget 6
    one = _feed_chunks(model, 1)
    assert int(one.temp_valid.sum()) == 4
    many = _feed_chunks(model, 5)
    assert int(many.temp_valid.sum()) == 6


def test_feeding_in_pieces_equals_feeding_at_once():
    model = comet_model("qwen3")
    ids, _ = sample(16 * 4 + 7)
    whole = feed(model, new_state(model), ids[0].tolist())
    st = new_state(model)
    for a in range(0, ids.shape[1], 5):
        st = feed(model, st, ids[0, a:a + 5].tolist())
    assert st.sha256() == whole.sha256()
    assert (st.tokens, st.chunks, st.pending) == (whole.tokens, whole.chunks, whole.pending)


def test_runtime_matches_training_forward_logits():
    """Generation's first token comes from the same logits the training forward computes."""
    from comet_models.chunked import Engine
    model = comet_model("gemma3_text")
    ids, _ = sample(16 * 3 + 5)
    st = feed(model, new_state(model), ids[0, :40].tolist())
    first = next(generate(model, st, ids[0, 40:].tolist(), max_new_tokens=1))
    eng = Engine(model)
    mems = eng.empty_memory()
    for a in (0, 16):
        _, _, mems = eng.run_chunk(ids[:, a:a + 16], mems)
    h, ctx, _ = eng.run_chunk(ids[:, 32:], mems, closed=False)
    logits = eng.logits(h[:, ctx.layout.text_pos[-1]])[0]
    banned = [model.comet_config.placeholder_id, model.comet_config.temp_beacon_id] + model.comet_config.global_beacon_ids
    logits[banned] = float("-inf")
    assert first == int(logits.argmax())


@pytest.mark.parametrize("sink_tokens", [0, 1])
def test_cached_decoding_equals_recomputing_the_open_chunk(sink_tokens):
    """Every generated token (KV cache, beacons fed while decoding) is the argmax of a fresh
    forward of the whole open chunk, with and without a sink token before the slots."""
    from comet_models.chunked import Engine
    model = comet_model("llama", sink_tokens=sink_tokens)
    cfg = model.comet_config
    ids, _ = sample(16 * 2 + 3)
    st = feed(model, new_state(model), ids[0, :20].tolist())
    prompt = ids[0, 20:25].tolist()  # 4 pending + 5: the open chunk is not split before decoding
    produced = list(generate(model, st, prompt, max_new_tokens=8))
    assert len(produced) == 8
    eng = Engine(model)
    banned = [cfg.placeholder_id, cfg.temp_beacon_id] + cfg.global_beacon_ids
    for i, tok in enumerate(produced):
        text = st.pending + prompt + produced[:i]
        with torch.inference_mode():  # the state's tensors are inference tensors
            mems = st.layer_memories(eng.device, torch.float32)
            h, ctx, _ = eng.run_chunk(torch.tensor([text]), mems, closed=False)
        logits = eng.logits(h[:, ctx.layout.text_pos[-1]])[0]
        logits[banned] = float("-inf")
        assert tok == int(logits.argmax()), f"token {i}"


def test_generation_does_not_change_the_state_and_is_deterministic():
    model = comet_model("llama")
    st = _feed_chunks(model, 3)
    digest = st.sha256()
    a = list(generate(model, st, [5, 6, 7], max_new_tokens=12))
    b = list(generate(model, st, [5, 6, 7], max_new_tokens=12))
    assert a == b and len(a) == 12
    assert st.sha256() == digest


def test_save_load_round_trip_is_bit_identical(tmp_path):
    model = comet_model("llama")
    st = _feed_chunks(model, 3)
    st.meta = {"sources": [{"path": "a.txt", "end": 12}]}
    path = tmp_path / "s.safetensors"
    digest = st.save(path, chunk_size=16)
    back = MemoryState.load(path, fingerprint=st.fingerprint)
    assert back.sha256() == digest == st.sha256()
    assert torch.equal(back.global_state, st.global_state) and torch.equal(back.temp_memory, st.temp_memory)
    assert (back.pending, back.tokens, back.chunks, back.meta) == (st.pending, st.tokens, st.chunks, st.meta)
    # continuing from the loaded state equals continuing from the original
    more, _ = sample(40, seed=3)
    assert feed(model, back, more[0].tolist()).sha256() == feed(model, st, more[0].tolist()).sha256()
    # tensors in a safetensors file sit at arbitrary offsets (here 40 bytes past 64 for the real
    # default): CPU kernels round differently on such buffers, so a resumed read of the trained
    # SmolLM2 drifted from an uninterrupted one. Loaded tensors must be freshly aligned.
    for pad in range(0, 64, 8):  # headers of every length mod 64 (safetensors pads them to 8 bytes)
        st.meta = {"pad": "x" * pad}
        st.save(path, chunk_size=16)
        back = MemoryState.load(path, fingerprint=st.fingerprint)
        assert all(t.data_ptr() % 64 == 0 for t in (back.global_state, back.temp_memory)), pad


def test_truncated_state_file_fails_with_one_line(tmp_path):
    model = comet_model("llama")
    path = tmp_path / "s.safetensors"
    _feed_chunks(model, 2).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StateError, match=r"s.safetensors: not a readable state file") as e:
        MemoryState.load(path)
    assert "\n" not in str(e.value)


def test_state_from_another_model_or_newer_format_is_refused(tmp_path):
    model = comet_model("llama")
    st = _feed_chunks(model, 2)
    st.fingerprint = "aaaa"
    path = tmp_path / "s.safetensors"
    st.save(path)
    with pytest.raises(StateError, match="written by another model"):
        MemoryState.load(path, fingerprint="bbbb")
    newer = tmp_path / "new.safetensors"
    t = st._tensors()
    save_file(t, str(newer), metadata={"format": "comet-memory-state", "format_version": str(FORMAT_VERSION + 1),
                                       "tokens": "0", "chunks": "0"})
    with pytest.raises(StateError, match="newer than this toolkit"):
        MemoryState.load(newer)
    with pytest.raises(StateError, match="no such state file"):
        MemoryState.load(tmp_path / "missing.safetensors")


def test_state_write_is_atomic(tmp_path, monkeypatch):
    """A failing write leaves the previous file intact and no temporary file behind."""
    model = comet_model("llama")
    path = tmp_path / "s.safetensors"
    first = _feed_chunks(model, 2)
    digest = first.save(path)
    import safetensors.torch as st_mod

    def boom(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(st_mod, "save_file", boom)
    with pytest.raises(OSError):
        _feed_chunks(model, 3).save(path)
    assert MemoryState.load(path).sha256() == digest
    assert [p.name for p in tmp_path.iterdir()] == ["s.safetensors"]


def test_bfloat16_reading_tracks_float32_in_its_own_fingerprint(tiny_comet_folder, tmp_path):
    """--dtype bfloat16: the state keeps the model's precision, stays close to the float32 read,
    and is keyed by another fingerprint; float32 fingerprints are those of earlier releases."""
    import hashlib
    import json

    from comet_models.convert import load_comet, memory_fingerprint

    m32, _ = load_comet(tiny_comet_folder)
    m16, _ = load_comet(tiny_comet_folder, dtype=torch.bfloat16)
    old = json.dumps({"base": m32.config.comet.get("base_sha256"), "layout": m32.comet_config.layout_dict(),
                      "memory": memory_fingerprint(m32)}, sort_keys=True).encode()
    assert m32.comet_fingerprint == hashlib.sha256(old).hexdigest()[:16]  # caches of float32 reads stay valid
    assert m16.comet_fingerprint != m32.comet_fingerprint
    ids = list(range(1000, 1000 + 64 * 8 + 5))
    a, b = feed(m32, new_state(m32), ids), feed(m16, new_state(m16), ids)
    assert b.global_state.dtype == torch.bfloat16 and b.chunks == a.chunks == 8
    for x, y in ((a.global_state, b.global_state), (a.temp_memory, b.temp_memory)):
        rel = float((y.float() - x).norm() / x.norm())
        assert 0 < rel < 0.05, rel  # rounded, not another computation
    b.save(tmp_path / "s.safetensors")
    assert MemoryState.load(tmp_path / "s.safetensors", m16.comet_fingerprint).sha256() == b.sha256()
    with pytest.raises(StateError):
        MemoryState.load(tmp_path / "s.safetensors", m32.comet_fingerprint)
    assert generate(m16, b, ids[:4], max_new_tokens=3)  # answers from a bfloat16 state


def _first_token(model, closed: list[list[int]], open_ids: list[int]) -> int:
    """Greedy first token after closing `closed` chunks one by one and reading `open_ids` open."""
    from comet_models.chunked import Engine
    eng, cfg = Engine(model), model.comet_config
    mems = eng.empty_memory()
    for ids in closed:
        _, _, mems = eng.run_chunk(torch.tensor([ids]), mems)
    h, ctx, _ = eng.run_chunk(torch.tensor([open_ids]), mems, closed=False)
    logits = eng.logits(h[:, ctx.layout.text_pos[-1]])[0]
    logits[[cfg.placeholder_id, cfg.temp_beacon_id] + cfg.global_beacon_ids] = float("-inf")
    return int(logits.argmax())


def test_after_a_long_document_the_answer_has_room_in_the_final_chunk():
    """As in training, the answer's tokens lie inside the final chunk: min(max_new_tokens, C // 2)
    positions are kept free; the document tail that does not fit is closed into memory first."""
    from comet_models.runtime import final_chunk
    model = comet_model("llama", chunk_size=32)
    C = model.comet_config.chunk_size
    doc = sample(3 * C - 3, seed=4)[0][0].tolist()
    state = feed(model, new_state(model), doc)
    tail, prompt = state.pending, [7, 8, 9]
    assert (state.chunks, len(tail) + len(prompt)) == (2, C - 3 + 3)  # a full chunk: no room at all
    over = len(tail) + len(prompt) - (C - 8)
    answer_from, text = final_chunk(model, state, prompt, max_new_tokens=8)
    assert (answer_from.chunks, text) == (3, tail[over:] + prompt)
    assert next(generate(model, state, prompt, max_new_tokens=8)) == \
        _first_token(model, [doc[:C], doc[C:2 * C], tail[:over]], tail[over:] + prompt)
    # a long answer gets at most half the chunk
    assert len(final_chunk(model, state, prompt, max_new_tokens=1000)[1]) == C // 2
    # and never the prompt's place: a prompt longer than the room stays whole in the final chunk
    long_prompt = list(range(20, 20 + C // 2 + 5))
    assert final_chunk(model, state, long_prompt, max_new_tokens=1000)[1] == long_prompt
    # a document that fits in one chunk with its prompt stays whole there, however long the answer
    short = feed(model, new_state(model), doc[:20])
    assert final_chunk(model, short, prompt, max_new_tokens=30) == (short, doc[:20] + prompt)


def test_doc_tail_keeps_only_a_short_tail_of_a_long_document_beside_the_prompt():
    """doc_tail=N: N document tokens before the prompt, the rest read into memory first (the layout
    pass-key retrieval works best with); the default keeps as much as the room allows."""
    from comet_models.runtime import final_chunk
    DOC_TAIL = 24
    model = comet_model("llama", chunk_size=64)
    C = model.comet_config.chunk_size
    doc = sample(3 * C - 3, seed=5)[0][0].tolist()
    state = feed(model, new_state(model), doc)
    tail, prompt = state.pending, [7, 8, 9]
    answer_from, text = final_chunk(model, state, prompt, max_new_tokens=8, doc_tail=DOC_TAIL)
    assert (answer_from.chunks, text) == (3, tail[-DOC_TAIL:] + prompt)
    assert next(generate(model, state, prompt, max_new_tokens=8, doc_tail=DOC_TAIL)) == \
        _first_token(model, [doc[:C], doc[C:2 * C], tail[:-DOC_TAIL]], tail[-DOC_TAIL:] + prompt)
    assert final_chunk(model, state, prompt, max_new_tokens=8)[1] == tail[-(C - 8 - 3):] + prompt
    assert final_chunk(model, state, prompt, max_new_tokens=8, doc_tail=0)[1] == prompt
    # a document that fits in one chunk with its prompt is still read whole there
    short = feed(model, new_state(model), doc[:40])
    assert final_chunk(model, short, prompt, max_new_tokens=8, doc_tail=DOC_TAIL) == (short, doc[:40] + prompt)


def test_score_is_the_log_probability_generate_reads():
    """runtime.score teacher-forces through generate's final chunk and beacon cadence: the greedy
    tokens score the per-step maximum, and any other token at a step scores lower."""
    from comet_models.runtime import score
    model = comet_model("llama", temp_stride=2)  # a beacon after every 2nd answer token
    state = feed(model, new_state(model), sample(16 * 3 + 5, seed=6)[0][0].tolist())
    prompt = [7, 8, 9]
    greedy = list(generate(model, state, prompt, max_new_tokens=5))
    assert len(greedy) == 5
    whole = score(model, state, prompt, greedy, max_new_tokens=5)
    assert whole < 0
    for i in range(5):
        other = (greedy[i] + 1) % 99
        assert score(model, state, prompt, greedy[:i] + [other], max_new_tokens=5) < \
            score(model, state, prompt, greedy[:i + 1], max_new_tokens=5)
    assert score(model, state, prompt, greedy[:3], max_new_tokens=5) > whole  # each step adds a log-probability
