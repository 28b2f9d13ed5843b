"""Core invariants of the memory plug-in (METHOD.md section 13), on every FAMILIES row."""
import copy

import pytest
import torch

from comet_models.chunked import Engine, sequence_loss
from comet_models.config import CometConfig
from comet_models.inject import FAMILIES, add_memory_tokens, inject_memory, memory_layers, remove_memory
from comet_models.layout import chunk_input_ids, chunk_layout, split_chunks
from comet_models.memory import MemoryModules, fifo_push
from comet_models.reference import reference_loss
from tests.tiny import CONFIGS, LAYOUT, base_model, comet_model, sample

FAMS = sorted(CONFIGS)


def base_and_injected(family):
    """The base model (vocabulary grown by the memory tokens) and an injected copy of it."""
    base = base_model(family)
    cfg = CometConfig(**LAYOUT)
    add_memory_tokens(base, cfg)
    return base, inject_memory(copy.deepcopy(base), cfg), cfg


def test_every_family_row_has_a_tiny_config():
    assert set(FAMILIES) == set(CONFIGS)


@pytest.mark.parametrize("family", FAMS)
def test_identity_at_init_one_chunk(family):
    """Fresh memory modules, one chunk, empty memory: text logits equal the base model's."""
    base, model, cfg = base_and_injected(family)
    ids, _ = sample(13)
    eng = Engine(model)
    h, ctx, _ = eng.run_chunk(ids, eng.empty_memory(), closed=True)
    got = eng.logits(h)[:, ctx.layout.text_pos]
    chunk_ids = chunk_input_ids(ids, ctx.layout, cfg)
    pos = torch.arange(chunk_ids.shape[1]).unsqueeze(0)
    want = base(input_ids=chunk_ids, position_ids=pos).logits[:, ctx.layout.text_pos]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", FAMS)
def test_plain_forward_of_injected_model_is_the_base_model(family):
    base, model, _ = base_and_injected(family)
    ids, _ = sample(20)
    torch.testing.assert_close(model(ids).logits, base(ids).logits)
    remove_memory(model)
    torch.testing.assert_close(model(ids).logits, base(ids).logits)


@pytest.mark.parametrize("family", FAMS)
@pytest.mark.parametrize("sizes", [[16], [16, 16, 16], [16] * 6 + [5]], ids=["1", "3", "7-short-last"])
def test_fast_path_matches_reference_outputs_and_gradients(family, sizes):
    model = comet_model(family)
    ids, labels = sample(sum(sizes))
    params = [p for p in model.parameters()]
    fast, n_fast = sequence_loss(model, ids, labels, sizes)
    g_fast = torch.autograd.grad(fast, params, allow_unused=True)
    ref, n_ref = reference_loss(model, ids, labels, sizes)
    g_ref = torch.autograd.grad(ref, params, allow_unused=True)
    assert n_fast == n_ref == sum(sizes) - 1
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(g_fast, g_ref):
        if a is None or b is None:
            assert a is None and b is None
            continue
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # memory parameters actually receive gradient when there is more than one chunk
    if len(sizes) > 1:
        mem_grads = [g for p, g in zip(model.named_parameters(), g_fast) if "comet_memory.gate" in p[0]]
        assert any(g is not None and g.abs().sum() > 0 for g in mem_grads)


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
def test_sink_layout_fast_path_matches_reference(family):
    """sink_tokens=1: a fixed token at position 0 of every chunk, slots after it, in both paths."""
    model = comet_model(family, sink_tokens=1)
    cfg = model.comet_config
    assert cfg.sink_id == cfg.placeholder_id  # no tokenizer: the placeholder row stands in for BOS
    sizes = [16, 16, 9]
    ids, labels = sample(sum(sizes))
    params = list(model.parameters())
    fast, n_fast = sequence_loss(model, ids, labels, sizes)
    g_fast = torch.autograd.grad(fast, params, allow_unused=True)
    ref, n_ref = reference_loss(model, ids, labels, sizes)
    g_ref = torch.autograd.grad(ref, params, allow_unused=True)
    assert n_fast == n_ref
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(g_fast, g_ref):
        if a is not None or b is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # the sink changes the computation: same weights without it give another loss
    plain = comet_model(family)
    other, _ = sequence_loss(plain, ids, labels, sizes)
    assert not torch.allclose(fast, other)


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
def test_without_temp_memory_fast_path_matches_reference(family):
    """keep_temp=False (training's fifo_dropout): beacons stay in the text, no FIFO entry is kept,
    in the fast path (both orders) and the reference loop; only the global memory links chunks."""
    model = comet_model(family, sink_tokens=1)
    sizes = [16, 16, 9]
    ids, labels = sample(sum(sizes))
    named = list(model.named_parameters())
    params = [p for _, p in named]
    fast, n_fast = sequence_loss(model, ids, labels, sizes, keep_temp=False)
    g_fast = torch.autograd.grad(fast, params, allow_unused=True)
    ref, n_ref = reference_loss(model, ids, labels, sizes, keep_temp=False)
    g_ref = torch.autograd.grad(ref, params, allow_unused=True)
    chunk, _ = sequence_loss(model, ids, labels, sizes, order="chunk", keep_temp=False)
    assert n_fast == n_ref
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(chunk, ref, rtol=1e-5, atol=1e-5)
    for (name, _), a, b in zip(named, g_fast, g_ref):
        if a is not None or b is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        if "temp_rla" in name or "temp_norm" in name:  # nothing reads a FIFO entry
            assert a is None or not a.any(), name
        if "comet_memory.gate" in name:  # the global memory still carries the gradient
            assert a is not None and a.abs().sum() > 0
    with_fifo, _ = sequence_loss(model, ids, labels, sizes)
    assert not torch.allclose(fast, with_fifo)
    # one chunk has no memory to drop
    one, _ = sequence_loss(model, ids[:, :16], labels[:, :16], [16], keep_temp=False)
    torch.testing.assert_close(one, sequence_loss(model, ids[:, :16], labels[:, :16], [16])[0])


def test_gate_power_fast_path_matches_reference():
    """gate_power m (training's gate_dilation): each global slot keeps g**m of its state, in the fast
    path (both orders) and the reference loop alike, gradients included; m = 1 is the plain update."""
    model = comet_model("llama", sink_tokens=1)
    sizes = [16, 16, 16, 9]
    ids, labels = sample(sum(sizes))
    named = list(model.named_parameters())
    params = [p for _, p in named]
    fast, _ = sequence_loss(model, ids, labels, sizes, gate_power=8.0)
    g_fast = torch.autograd.grad(fast, params, allow_unused=True)
    ref, _ = reference_loss(model, ids, labels, sizes, gate_power=8.0)
    g_ref = torch.autograd.grad(ref, params, allow_unused=True)
    chunk, _ = sequence_loss(model, ids, labels, sizes, order="chunk", gate_power=8.0)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(chunk, ref, rtol=1e-5, atol=1e-5)
    for (name, _), a, b in zip(named, g_fast, g_ref):
        if a is not None or b is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    plain, _ = sequence_loss(model, ids, labels, sizes)
    torch.testing.assert_close(sequence_loss(model, ids, labels, sizes, gate_power=1.0)[0], plain)
    assert not torch.allclose(fast, plain)
    # the math of one update: g**m of the old state, 1 - g**m of the new readout
    mm = memory_layers(model)[0].comet_memory
    old, new = torch.randn(1, 2, mm.gate.in_features // 2), torch.randn(1, 2, mm.gate.in_features // 2)
    r = mm.global_norm(new)
    g = torch.sigmoid(mm.gate(torch.cat([r, old], -1)))
    torch.testing.assert_close(mm.update_global(old, new, 3.0), g ** 3 * old + (1 - g ** 3) * r)


def test_sink_layout_positions():
    cfg = CometConfig(chunk_size=8, global_slots=2, temp_stride=4, temp_budget=3, sink_tokens=1,
                      placeholder_id=90, temp_beacon_id=91, global_beacon_ids=[92, 93], sink_id=7)
    lay = chunk_layout(8, cfg, n_global=2, n_temp=2, closed=True)
    assert (lay.n_sink, lay.slot_end) == (1, 5)
    assert lay.text_pos.tolist() == [5, 6, 7, 8, 10, 11, 12, 13]
    assert lay.temp_beacon_pos.tolist() == [9, 14]
    assert lay.global_beacon_pos.tolist() == [15, 16] and lay.length == 17
    ids = chunk_input_ids(torch.arange(8).unsqueeze(0) + 20, lay, cfg)[0].tolist()
    assert ids == [7, 90, 90, 90, 90, 20, 21, 22, 23, 91, 24, 25, 26, 27, 91, 92, 93]
    assert cfg.layout_dict()["sink_tokens"] == 1
    assert "sink_tokens" not in CometConfig().layout_dict()  # older layouts and fingerprints unchanged


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
def test_layer_major_equals_chunk_major(family):
    model = comet_model(family)
    ids, labels = sample(16 * 4 + 3)
    sizes = split_chunks(ids.shape[1], 16)
    a, _ = sequence_loss(model, ids, labels, sizes, order="layer")
    b, _ = sequence_loss(model, ids, labels, sizes, order="chunk")
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_batch_of_two_equals_two_single_runs():
    model = comet_model("qwen3")
    ids, labels = sample(40, batch=2)
    sizes = split_chunks(40, 16)
    both, n = sequence_loss(model, ids, labels, sizes)
    one = sum(sequence_loss(model, ids[i:i + 1], labels[i:i + 1], sizes)[0] for i in range(2))
    torch.testing.assert_close(both, one, rtol=1e-5, atol=1e-5)


def test_layout_places_beacons_and_slots():
    cfg = CometConfig(chunk_size=8, global_slots=2, temp_stride=4, temp_budget=3,
                      placeholder_id=90, temp_beacon_id=91, global_beacon_ids=[92, 93])
    # METHOD.md 4.3: chunk2 of the worked example, with 3 valid FIFO entries
    lay = chunk_layout(4, cfg, n_global=2, n_temp=3, closed=True)
    ids = chunk_input_ids(torch.tensor([[16, 17, 18, 19]]), lay, cfg)
    assert ids.tolist() == [[90, 90, 90, 90, 90, 16, 17, 18, 19, 91, 92, 93]]
    # a closed chunk gets a beacon after its trailing partial segment; an open one does not
    closed = chunk_input_ids(torch.tensor([[1, 2, 3, 4, 5]]), chunk_layout(5, cfg, 0, 0, True), cfg)
    open_ = chunk_input_ids(torch.tensor([[1, 2, 3, 4, 5]]), chunk_layout(5, cfg, 0, 0, False), cfg)
    assert closed.tolist() == [[1, 2, 3, 4, 91, 5, 91, 92, 93]]
    assert open_.tolist() == [[1, 2, 3, 4, 91, 5]]


def test_fifo_keeps_newest_entries_in_order():
    q = None
    for step in range(5):
        entries = torch.full((1, 3, 1), float(step)) + torch.arange(3.0).view(1, 3, 1) / 10
        q = fifo_push(q, entries, budget=7)
        assert q.shape[1] <= 7
    assert q[0, :, 0].tolist() == pytest.approx([2.2, 3.0, 3.1, 3.2, 4.0, 4.1, 4.2])


def test_gate_is_one_value_per_slot_and_saturated_gate_freezes_state():
    mm = MemoryModules(8, rank=2)
    state, readout = torch.randn(1, 3, 8), torch.randn(1, 3, 8)
    gate = torch.sigmoid(mm.gate(torch.cat([mm.global_norm(readout), state], -1)))
    assert gate.shape == (1, 3, 1) and bool(((gate > 0) & (gate < 1)).all())
    with torch.no_grad():
        mm.gate.weight.fill_(0)
        mm.gate.weight[0, 8:] = 1e4 * torch.sign(state[0, 0])  # huge positive logit on this slot
    new = mm.update_global(state, readout)
    torch.testing.assert_close(new[0, 0], state[0, 0])


def test_rla_starts_as_identity():
    mm = MemoryModules(8, rank=2)
    x = torch.randn(2, 3, 8)
    torch.testing.assert_close(mm.read_global(x), x)


def test_unsupported_family_names_the_supported_ones():
    from transformers import GPT2Config, AutoModelForCausalLM
    from comet_cli.errors import UnsupportedModelError

    m = AutoModelForCausalLM.from_config(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50))
    cfg = CometConfig(**LAYOUT)
    with pytest.raises(UnsupportedModelError, match="gpt2.*supported: gemma3_text, llama, mistral, qwen2, qwen3"):
        inject_memory(m, cfg)


def test_cache_keyword_follows_the_layer_signature():
    """transformers renamed the decoder layers' KV-cache keyword (past_key_values -> cache); the
    engine passes whichever the installed version's layer takes."""
    from torch import nn

    from comet_models.inject import cache_kwarg

    class Old(nn.Module):
        def forward(self, hidden_states, attention_mask=None, past_key_values=None, **kwargs):
            return hidden_states

    class New(nn.Module):
        def forward(self, hidden_states, attention_mask=None, cache=None, **kwargs):
            return hidden_states

    assert cache_kwarg(Old()) == "past_key_values"
    assert cache_kwarg(New()) == "cache"
    model = comet_model("llama")
    assert Engine(model).cache_kw in ("cache", "past_key_values")
