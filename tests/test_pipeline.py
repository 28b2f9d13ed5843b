"""Pipeline planning (pure) and the pipelined loss over 2 and 3 gloo processes.

The multi-process tests compare, on a tiny random Llama with randomised memory weights, the
summed loss and every parameter gradient of `pipeline_loss` + `allreduce_grads` against
single-process `sequence_loss(order="layer")`, for both schedules, with a short last chunk and
K not divisible by P.
"""
from __future__ import annotations

import math
import os
import socket
from datetime import timedelta

import pytest
import torch

from comet_cli.errors import RecipeError
from comet_cli.finetune.pipeline_plan import (bubble_fraction, chunk_positions, estimate_rank_memory,
                                              ideal_speedup, plan_blocks, slot_counts_at, wavefront_steps)
from comet_models.config import CometConfig

CFG = dict(chunk_size=16, global_slots=4, temp_stride=4, temp_budget=6)


# -- planning --------------------------------------------------------------------------------
@pytest.mark.parametrize("k,p", [(5, 2), (7, 3), (8, 4), (3, 3), (10, 1), (9, 4)])
def test_plan_blocks_contiguous_and_balanced(k, p):
    blocks = plan_blocks(k, p)
    assert len(blocks) == p
    assert [c for b in blocks for c in b] == list(range(k))
    sizes = [len(b) for b in blocks]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_plan_blocks_more_ranks_than_chunks():
    with pytest.raises(RecipeError, match="4 ranks but the sample has only 3 chunks"):
        plan_blocks(3, 4)


def test_slot_counts_follow_the_fifo():
    cfg = CometConfig(**CFG)
    sizes = [16, 16, 3, 16, 5]  # 4, 4, 1, 4, 2 temp beacons
    assert [slot_counts_at(sizes, cfg, k) for k in range(6)] == [
        (0, 0), (4, 4), (4, 6), (4, 6), (4, 6), (4, 6)]
    assert slot_counts_at([3, 2], CometConfig(**CFG), 1) == (4, 1)
    assert slot_counts_at(sizes, CometConfig(**{**CFG, "temp_stride": 0}), 3) == (4, 0)
    assert slot_counts_at(sizes, CometConfig(**{**CFG, "global_slots": 0}), 3) == (0, 6)


def test_slot_counts_match_the_engine():
    """The plan's slot counts and chunk lengths are the ones the model's layouts produce."""
    from comet_models.chunked import Engine
    from comet_models.memory import LayerMemory

    model, cfg = _tiny_model()
    eng = Engine(model)
    sizes = [16, 16, 7, 16, 3]
    mem = [LayerMemory(None, None)]
    for k, n in enumerate(sizes):
        assert (mem[0].n_global, mem[0].n_temp) == slot_counts_at(sizes, cfg, k)
        _, ctx = eng.prepare(torch.zeros(1, n, dtype=torch.long), mem, closed=True)
        assert ctx.layout.length == chunk_positions(sizes, cfg, k)
        mem = [eng._after(mem[0], ctx.layout, 1)]


def test_speedup_and_bubble():
    assert ideal_speedup(4, 36) == pytest.approx(144 / 39)
    assert bubble_fraction(4, 36) == pytest.approx(3 / 39)  # 7.7 %, METHOD.md 10.3
    assert ideal_speedup(1, 12) == 1 and bubble_fraction(1, 12) == 0
    for p, l in [(2, 12), (3, 5)]:
        steps = wavefront_steps(p, l)
        assert len(steps) == l + p - 1 and len(wavefront_steps(p, l, "naive")) == p * l
        busy = sum(len(s) for s in steps) / (len(steps) * p)
        assert 1 - busy == pytest.approx(bubble_fraction(p, l))


def test_memory_estimate_splits_activations():
    cfg = CometConfig(**CFG)
    sizes = [16] * 7 + [5]
    one = estimate_rank_memory(sizes, cfg, 1, hidden=32, n_layers=4, n_params=1000)
    two = estimate_rank_memory(sizes, cfg, 2, hidden=32, n_layers=4, n_params=1000)
    assert sum(r.positions for r in two) == one[0].positions
    assert max(r.activation_bytes for r in two) < one[0].activation_bytes
    assert two[0].parameter_bytes == one[0].parameter_bytes == 8000
    assert two[0].message_bytes == 0 and two[1].message_bytes == (4 + 6) * 32 * 4


# -- multi-process equivalence ------------------------------------------------------------------
def _tiny_model():
    from transformers import AutoModelForCausalLM, LlamaConfig

    from comet_models.inject import add_memory_tokens, inject_memory

    conf = LlamaConfig(vocab_size=99, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_config(conf, attn_implementation="sdpa")
    cfg = CometConfig(**CFG)
    add_memory_tokens(m, cfg)
    inject_memory(m, cfg)
    for name, p in m.named_parameters():
        if "comet_memory" in name:
            p.data.normal_(0, 0.1)
    return m, cfg


def _sample(chunk_sizes):
    g = torch.Generator().manual_seed(1)
    n = sum(chunk_sizes)
    ids = torch.randint(0, 99, (2, n), generator=g)
    labels = torch.roll(ids, -1, dims=1)
    labels[:, -1] = -100
    labels[0, 5:9] = -100
    return ids, labels


def _grads(model):
    return {n: (p.grad.clone() if p.grad is not None else None) for n, p in model.named_parameters()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# (result key, schedule, keep_temp, gate_power): both schedules, a sample trained without temporary
# memory, and one with its global gates raised to a power (train.gate_dilation)
RUNS = (("wavefront", "wavefront", True, 1.0), ("naive", "naive", True, 1.0), ("no_fifo", "wavefront", False, 1.0),
        ("dilated", "wavefront", True, 8.0))


def _worker(rank, world, port, chunk_sizes, out_dir, fail_rank):
    import torch.distributed as dist

    from comet_cli.finetune.parallel import allreduce_grads, pipeline_loss, reduce_loss

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world, timeout=timedelta(seconds=60))
    model, _ = _tiny_model()
    ids, labels = _sample(chunk_sizes)
    result = {}
    try:
        if fail_rank is not None:
            if rank == fail_rank:
                from comet_models.chunked import Engine

                def broken(self, l, *a):
                    if l == 2:
                        raise ValueError("simulated failure")
                    return Engine._cell(self, l, *a)
                Engine._cell, Engine.cell = Engine.cell, broken
            loss, _ = pipeline_loss(model, ids, labels, chunk_sizes)
            loss.backward()
            allreduce_grads(model)
            result["ok"] = True
        else:
            for key, schedule, keep, power in RUNS:
                model.zero_grad(set_to_none=True)
                loss, count = pipeline_loss(model, ids, labels, chunk_sizes, schedule=schedule, keep_temp=keep,
                                            gate_power=power)
                loss.backward()
                allreduce_grads(model)
                result[key] = (reduce_loss(loss, count), _grads(model))
            # all ranks leave together: gloo aborted a process at teardown once when a peer was
            # still closing its pairs (seen on a loaded CI machine)
            dist.barrier()
            dist.destroy_process_group()
    except Exception as e:  # noqa: BLE001 - reported to the test
        result["error"] = f"{type(e).__name__}: {e}"
    torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))


def _spawn(world, chunk_sizes, tmp_path, fail_rank=None):
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(world, _free_port(), chunk_sizes, str(tmp_path), fail_rank), nprocs=world)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(world)]


@pytest.mark.slow
@pytest.mark.parametrize("world,chunk_sizes", [(2, [16, 16, 16, 16, 7]), (3, [16, 16, 16, 16, 16, 16, 5])])
def test_pipeline_matches_single_process(world, chunk_sizes, tmp_path):
    from comet_models.chunked import sequence_loss

    model, _ = _tiny_model()
    ids, labels = _sample(chunk_sizes)
    want = {}
    for keep, power in {(keep, power) for _, _, keep, power in RUNS}:
        model.zero_grad(set_to_none=True)
        ref_loss, ref_count = sequence_loss(model, ids, labels, chunk_sizes, order="layer", keep_temp=keep,
                                            gate_power=power)
        ref_loss.backward()
        want[keep, power] = (float(ref_loss.detach()), ref_count, _grads(model))
        assert sum(g is not None for g in want[keep, power][2].values()) > 20
    assert want[True, 1.0][0] != pytest.approx(want[False, 1.0][0], rel=1e-4)  # the FIFO matters here
    assert abs(want[True, 1.0][0] - want[True, 8.0][0]) > 1e-2  # so do the gates (0.04 of 632 here)

    results = _spawn(world, chunk_sizes, tmp_path)
    for r, res in enumerate(results):
        assert "error" not in res, res.get("error")
        for schedule, _, keep, power in RUNS:
            (loss, count), grads = res[schedule]
            ref_loss, ref_count, ref = want[keep, power]
            assert count == ref_count
            assert loss == pytest.approx(ref_loss, rel=1e-5)
            for name, g_ref in ref.items():
                g = grads[name]
                if g_ref is None:
                    assert g is None or not g.any(), name
                    continue
                scale = float(g_ref.abs().max())
                err = float((g - g_ref).abs().max())
                assert err <= 1e-5 * scale + 1e-9, f"{schedule} rank {r} {name}: {err} vs {scale}"


@pytest.mark.slow
def test_failure_on_one_rank_does_not_hang(tmp_path):
    """Rank 1 raises at layer 2 and aborts the group; rank 0 fails fast instead of waiting."""
    import time

    t0 = time.time()
    results = _spawn(2, [16, 16, 16, 7], tmp_path, fail_rank=1)
    assert "simulated failure" in results[1]["error"]
    assert "error" in results[0] and "ok" not in results[0]
    assert time.time() - t0 < 50  # well under the 60 s collective timeout


def test_planning_imports_no_torch():
    import comet_cli.finetune.pipeline_plan as plan

    assert "torch" not in vars(plan) and "dist" not in vars(plan)
    assert math.isclose(plan.ideal_speedup(2, 12), 24 / 13)


def test_one_rank_without_process_group_matches_sequence_loss():
    from comet_cli.finetune.parallel import allreduce_grads, pipeline_loss, reduce_loss
    from comet_models.chunked import sequence_loss

    model, _ = _tiny_model()
    sizes = [16, 16, 9]
    ids, labels = _sample(sizes)
    ref, ref_count = sequence_loss(model, ids, labels, sizes)
    ref.backward()
    ref_grads = _grads(model)
    model.zero_grad(set_to_none=True)
    loss, count = pipeline_loss(model, ids, labels, sizes)
    loss.backward()
    allreduce_grads(model)
    assert reduce_loss(loss, count) == (pytest.approx(float(ref.detach()), rel=1e-6), ref_count)
    for name, g in _grads(model).items():
        assert (g is None) == (ref_grads[name] is None), name
        if g is not None:
            torch.testing.assert_close(g, ref_grads[name], rtol=1e-6, atol=1e-8)


def test_bad_arguments_raise_recipe_errors():
    from comet_cli.finetune.parallel import pipeline_loss

    model, _ = _tiny_model()
    ids, labels = _sample([16, 16])
    with pytest.raises(RecipeError, match="schedule"):
        pipeline_loss(model, ids, labels, [16, 16], schedule="gpipe")
    with pytest.raises(RecipeError, match="chunk sizes sum to 31"):
        pipeline_loss(model, ids, labels, [16, 15])
