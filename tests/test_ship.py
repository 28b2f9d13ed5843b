"""Shipping trained weights: two LoRA stages packed into one small file (models/ship.py), applied
by `convert` to the untouched base model, give exactly the model the second stage exported."""
import importlib.util

import pytest
import torch
from safetensors import safe_open

from comet_cli.finetune import train as T
from comet_cli.finetune.config import load_recipe

pytestmark = pytest.mark.skipif(importlib.util.find_spec("peft") is None,
                                reason="peft (the lora extra) is not installed")

RECIPE = """\
model: {{source: "{source}"}}
memory: {{chunk_size: 64, global_slots: 4, temp_stride: 8, temp_budget: 16}}
data:
  max_tokens: 192
  min_chunks: 2
  max_chunks: 3
  sources:
    - {{kind: text, paths: ["{book}"]}}
trainable: {{mode: lora, lora_rank: {rank}, lora_alpha: 8.0, lora_targets: [q_proj, v_proj]}}
optim: {{lr: 5.0e-2, warmup_steps: 0, schedule: constant}}
train: {{steps: 2, log_every: 1, output_dir: "{out}", device: cpu}}
checkpoint: {{every: 0}}
eval: {{every: 0, samples: 0}}
"""


def _stage(tmp_path, name, source, rank):
    book = tmp_path / "book.txt"
    if not book.exists():
        book.write_text(" ".join(f"The ship {i} sailed past the island at dawn." for i in range(200)))
    path = tmp_path / f"{name}.yaml"
    path.write_text(RECIPE.format(source=source, book=book, rank=rank, out=tmp_path / name))
    run = T.setup(load_recipe(path), path.parent, quiet=True)
    T.train(run)
    T.export(run)
    return tmp_path / name


def _logits(model, ids):
    from comet_models.chunked import sequence_loss

    labels = ids.clone()
    loss, _ = sequence_loss(model, ids, labels, [64, 64])
    return loss


def test_packed_stages_rebuild_the_exported_model(tmp_path, tiny_hf_folder, monkeypatch):
    from comet_models.convert import convert_model, load_comet, weights_layout
    from comet_models.ship import DELTA_PREFIX, pack

    monkeypatch.setenv("COMET_HOME", str(tmp_path / "home"))
    torch.set_num_threads(1)
    s1 = _stage(tmp_path, "s1", tiny_hf_folder, rank=2)
    s2 = _stage(tmp_path, "s2", tmp_path / "s1" / "model", rank=4)
    shipped = tmp_path / "shipped.safetensors"
    info = pack([s1, s2], shipped)
    assert info["adapted_weights"] == 2 * 2  # q and v of both tiny layers
    with safe_open(str(shipped), "pt") as f:
        a = f.get_tensor(f"{DELTA_PREFIX}model.layers.0.self_attn.q_proj.weight.A")
        assert a.shape[0] == 2 + 4  # the two stages' ranks, stacked
        assert "then" in f.metadata()["training"]
    assert weights_layout(shipped)["chunk_size"] == 64
    out = convert_model(tiny_hf_folder, tmp_path / "rebuilt", memory_weights=shipped)  # layout from the file
    rebuilt, _ = load_comet(out)
    exported, _ = load_comet(s2 / "model")
    fresh, _ = load_comet(convert_model(tiny_hf_folder, tmp_path / "fresh", layout=weights_layout(shipped)))
    ids = torch.randint(0, 500, (1, 128), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got, want, base = _logits(rebuilt, ids), _logits(exported, ids), _logits(fresh, ids)
    assert float(got) == pytest.approx(float(want), rel=1e-5)
    assert abs(float(base) - float(want)) > 1e-3  # training changed the model: the check can fail


def test_a_packed_file_is_a_stage(tmp_path, tiny_hf_folder, monkeypatch):
    """A run trained from a model converted with a pack is packed as `PACK run`: the result rebuilds
    the run's exported model, and lists the pack's stages and the run's, in order."""
    import json

    from comet_models.convert import convert_model, load_comet
    from comet_models.ship import pack

    monkeypatch.setenv("COMET_HOME", str(tmp_path / "home"))
    torch.set_num_threads(1)
    s1 = _stage(tmp_path, "s1", tiny_hf_folder, rank=2)
    first = tmp_path / "first.safetensors"
    pack([s1], first)
    start = convert_model(tiny_hf_folder, tmp_path / "from-pack", memory_weights=first)
    s2 = _stage(tmp_path, "s2", start, rank=4)  # s1's folders may be gone now: only the pack is needed
    both = tmp_path / "both.safetensors"
    info = pack([first, s2], both)
    assert info["adapted_weights"] == 2 * 2
    with safe_open(str(both), "pt") as f:
        assert json.loads(f.metadata()["stages"]) == [str(s1), str(s2)]
        assert f.metadata()["training"].count(" then ") == 1
    rebuilt, _ = load_comet(convert_model(tiny_hf_folder, tmp_path / "rebuilt", memory_weights=both))
    exported, _ = load_comet(s2 / "model")
    ids = torch.randint(0, 500, (1, 128), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got, want = _logits(rebuilt, ids), _logits(exported, ids)
    assert float(got) == pytest.approx(float(want), rel=1e-5)


def test_bad_deltas_are_one_line_errors(tmp_path, tiny_hf_folder):
    from safetensors.torch import save_file

    from comet_cli.errors import ModelError
    from comet_models.convert import convert_model, load_comet, save_memory_weights

    model, _ = load_comet(convert_model(tiny_hf_folder, tmp_path / "m", layout=dict(chunk_size=64)))
    good = tmp_path / "w.safetensors"
    save_memory_weights(model, good)
    with safe_open(str(good), "pt") as f:
        sd, md = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
    sd["lora_delta.model.layers.9.self_attn.q_proj.weight.A"] = torch.zeros(2, 64)
    sd["lora_delta.model.layers.9.self_attn.q_proj.weight.B"] = torch.zeros(64, 2)
    bad = tmp_path / "bad.safetensors"
    save_file(sd, str(bad), metadata=md)
    with pytest.raises(ModelError, match="do not fit this model"):
        convert_model(tiny_hf_folder, tmp_path / "x", memory_weights=bad)
    assert not (tmp_path / "x").exists()


def test_truncate_is_the_best_low_rank_approximation():
    from comet_models.ship import truncate

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(12, 40, generator=g), torch.randn(30, 12, generator=g)
    dense = (b @ a).double()
    a5, b5, err = truncate(a, b, 5)
    assert a5.shape == (5, 40) and b5.shape == (30, 5)
    s = torch.linalg.svdvals(dense)
    best = torch.linalg.matrix_norm(dense - torch.linalg.svd(dense).U[:, :5] @ torch.diag(s[:5])
                                    @ torch.linalg.svd(dense).Vh[:5])
    got = torch.linalg.matrix_norm(dense - (b5 @ a5).double())
    assert float(got) == pytest.approx(float(best), rel=1e-4)  # Eckart-Young: no rank-5 pair does better
    assert err == pytest.approx(float(got / torch.linalg.matrix_norm(dense)), rel=1e-4)
    a12, b12, err12 = truncate(a, b, 12)  # full rank: unchanged and exact
    assert err12 == 0.0 and torch.equal(a12, a)


def test_pack_with_rank_and_dtype_still_converts(tmp_path, tiny_hf_folder, monkeypatch):
    from comet_models.convert import convert_model, load_comet
    from comet_models.ship import DELTA_PREFIX, pack

    monkeypatch.setenv("COMET_HOME", str(tmp_path / "home"))
    torch.set_num_threads(1)
    s1 = _stage(tmp_path, "s1", tiny_hf_folder, rank=2)
    s2 = _stage(tmp_path, "s2", tmp_path / "s1" / "model", rank=4)
    shipped = tmp_path / "small.safetensors"
    info = pack([s1, s2], shipped, rank=3, dtype=torch.bfloat16)
    assert 0.0 < info["delta_rel_error"]["max"] < 1.0
    with safe_open(str(shipped), "pt") as f:
        a = f.get_tensor(f"{DELTA_PREFIX}model.layers.0.self_attn.q_proj.weight.A")
        assert a.shape[0] == 3 and a.dtype == torch.bfloat16
        assert f.metadata()["delta_rank"] == "3"
    rebuilt, _ = load_comet(convert_model(tiny_hf_folder, tmp_path / "rebuilt", memory_weights=shipped))
    exported, _ = load_comet(s2 / "model")
    ids = torch.randint(0, 500, (1, 128), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got, want = _logits(rebuilt, ids), _logits(exported, ids)
    assert float(got) == pytest.approx(float(want), rel=5e-3)  # close, not exact: rank 3 of 6, bf16


def test_delta_dtype_casts_only_the_factors(tmp_path, tiny_hf_folder, monkeypatch):
    """float32 memory weights beside float16 factors: the shipped default's mix (exact memory modules
    and token rows, the bulk of the file halved)."""
    from comet_models.ship import DELTA_PREFIX, pack

    monkeypatch.setenv("COMET_HOME", str(tmp_path / "home"))
    torch.set_num_threads(1)
    s1 = _stage(tmp_path, "s1", tiny_hf_folder, rank=2)
    mixed, plain = tmp_path / "mixed.safetensors", tmp_path / "plain.safetensors"
    pack([s1], mixed, dtype=torch.float32, delta_dtype=torch.float16)
    pack([s1], plain, dtype=torch.float32)
    with safe_open(str(mixed), "pt") as f, safe_open(str(plain), "pt") as g:
        kinds = {k.startswith(DELTA_PREFIX): f.get_tensor(k).dtype for k in f.keys() if f.get_tensor(k).is_floating_point()}
        assert kinds == {True: torch.float16, False: torch.float32}
        for k in f.keys():
            want = g.get_tensor(k)
            assert torch.equal(f.get_tensor(k).float(), want.to(f.get_tensor(k).dtype).float())


def test_last_weight_packs_the_average_of_the_last_two_stages(tmp_path, tiny_hf_folder, monkeypatch):
    """--last-weight 0.5: the pack rebuilds the mean of the two stages' exported models (a model soup,
    benchmarks/results/training/r24/soup.py), base weights and memory modules alike."""
    from comet_models.convert import convert_model, load_comet
    from comet_models.ship import pack

    monkeypatch.setenv("COMET_HOME", str(tmp_path / "home"))
    torch.set_num_threads(1)
    s1 = _stage(tmp_path, "s1", tiny_hf_folder, rank=2)
    s2 = _stage(tmp_path, "s2", tmp_path / "s1" / "model", rank=4)
    soup = tmp_path / "soup.safetensors"
    pack([s1, s2], soup, last_weight=0.5)
    with safe_open(str(soup), "pt") as f:
        assert f.metadata()["last_weight"] == "0.5" and "weighted 0.5" in f.metadata()["training"]
    rebuilt = load_comet(convert_model(tiny_hf_folder, tmp_path / "rebuilt", memory_weights=soup))[0].state_dict()
    one, two = (load_comet(s / "model")[0].state_dict() for s in (s1, s2))
    moved = 0
    for k, v in rebuilt.items():
        assert torch.allclose(v.float(), (one[k].float() + two[k].float()) / 2, atol=1e-6), k
        moved += not torch.equal(one[k], two[k])
    assert moved > 4  # the second stage changed base and memory weights: the check can fail
    with pytest.raises(ValueError, match="an earlier stage"):
        pack([s2], tmp_path / "x.safetensors", last_weight=0.5)
