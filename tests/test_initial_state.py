"""CometConfig.initial_state: a learned global state before the first chunk, so the first write is gated.

Ours, not the paper's (METHOD.md 6.2 leaves the first write ungated): the fast path and the slow
reference loop must agree on it, gradients included, and it must change nothing a model without it
computes (layout, fingerprints, one-chunk inputs)."""
import pytest
import torch

from comet_models.chunked import sequence_loss
from comet_models.config import CometConfig
from comet_models.inject import memory_layers
from comet_models.reference import reference_loss
from tests.tiny import comet_model, sample


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
def test_initial_state_fast_path_matches_reference(family):
    model = comet_model(family, sink_tokens=1, initial_state=True)
    sizes = [16, 16, 9]
    ids, labels = sample(sum(sizes))
    named = list(model.named_parameters())
    params = [p for _, p in named]
    fast, n_fast = sequence_loss(model, ids, labels, sizes)
    g_fast = torch.autograd.grad(fast, params, allow_unused=True)
    ref, n_ref = reference_loss(model, ids, labels, sizes)
    g_ref = torch.autograd.grad(ref, params, allow_unused=True)
    chunk, _ = sequence_loss(model, ids, labels, sizes, order="chunk")
    assert n_fast == n_ref
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(chunk, ref, rtol=1e-5, atol=1e-5)
    seen = 0
    for (name, _), a, b in zip(named, g_fast, g_ref):
        if a is not None or b is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        if name.endswith("comet_memory.initial_state"):  # trained through the first gated write
            assert a is not None and a.abs().sum() > 0, name
            seen += 1
    assert seen == len(memory_layers(model))


def test_initial_state_gates_the_first_write_and_spares_one_chunk():
    with_init = comet_model("llama", sink_tokens=1, initial_state=True)
    plain = comet_model("llama", sink_tokens=1)
    # same weights apart from the initial states
    missing, unexpected = plain.load_state_dict(with_init.state_dict(), strict=False)
    assert not missing and all(k.endswith("initial_state") for k in unexpected) and unexpected
    sizes = [16, 16, 9]
    ids, labels = sample(sum(sizes))
    assert not torch.allclose(sequence_loss(with_init, ids, labels, sizes)[0],
                              sequence_loss(plain, ids, labels, sizes)[0])
    # the first chunk reads no global memory either way
    torch.testing.assert_close(sequence_loss(with_init, ids[:, :16], labels[:, :16], [16])[0],
                               sequence_loss(plain, ids[:, :16], labels[:, :16], [16])[0])
    # the update itself: g * S_init + (1 - g) * R~, g from [R~; S_init]
    mm = memory_layers(with_init)[0].comet_memory
    new = torch.randn(2, mm.initial_state.shape[0], mm.initial_state.shape[1])
    r = mm.global_norm(new)
    init = mm.initial_state.expand(2, -1, -1)
    g = torch.sigmoid(mm.gate(torch.cat([r, init], -1)))
    torch.testing.assert_close(mm.update_global(None, new), g * init + (1 - g) * r)


def test_initial_state_starts_at_zero_and_only_shows_in_layouts_that_use_it():
    fresh = comet_model("llama", randomize_memory=False, initial_state=True)
    for layer in memory_layers(fresh):
        assert layer.comet_memory.initial_state.shape == (fresh.comet_config.global_slots, fresh.config.hidden_size)
        assert not layer.comet_memory.initial_state.any()
    assert all(layer.comet_memory.initial_state is None for layer in memory_layers(comet_model("llama")))
    assert "initial_state" not in CometConfig().layout_dict()  # older models' fingerprints unchanged
    assert CometConfig(initial_state=True).layout_dict()["initial_state"] is True
    assert CometConfig.from_dict(CometConfig(initial_state=True).to_dict()).initial_state
