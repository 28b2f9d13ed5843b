"""Recipes: strict YAML loading, did-you-mean, type-checked overrides, fingerprint."""
import dataclasses

import pytest

from comet_cli.errors import RecipeError
from comet_cli.finetune.config import (Recipe, SourceSpec, apply_override, load_recipe, recipe_fingerprint,
                                       recipe_to_dict, recipe_to_yaml)
from comet_models.config import CometConfig

GOOD = """\
model:
  source: tiny-random:llama
memory:
  chunk_size: 64
optim:
  lr: 1e-4
  warmup_steps: 2
data:
  max_tokens: 512
  sources:
    - kind: passkey
      filler: [book.txt]
    - {kind: chat_jsonl, path: chats.jsonl, weight: 3}
  planner: {fixed: 0.5, random: 0.5}
eval:
  passkey_lengths: [256, 512]
"""


def write(tmp_path, text, name="recipe.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def error_of(fn, *args):
    with pytest.raises(RecipeError) as e:
        fn(*args)
    return str(e.value)


def test_load_reads_every_section_and_converts_types(tmp_path):
    r = load_recipe(write(tmp_path, GOOD))
    assert r.model.source == "tiny-random:llama"
    assert r.memory.chunk_size == 64 and r.memory.global_slots is None
    # PyYAML reads 1e-4 (no dot) as a string; a float field accepts it.
    assert r.optim.lr == pytest.approx(1e-4) and isinstance(r.optim.lr, float)
    assert [s.kind for s in r.data.sources] == ["passkey", "chat_jsonl"]
    assert isinstance(r.data.sources[1], SourceSpec) and r.data.sources[1].weight == 3.0
    assert r.data.sources[1].files() == ["chats.jsonl"]
    assert r.data.planner == {"fixed": 0.5, "random": 0.5}
    assert r.eval.passkey_lengths == [256, 512]
    assert r.optim.grad_clip == 1.5 and r.trainable.memory_lr_mult == 5.0  # METHOD.md 8.1 defaults


def test_yaml_round_trip_is_exact(tmp_path):
    r = load_recipe(write(tmp_path, GOOD), ["train.steps=7"])
    again = load_recipe(write(tmp_path, recipe_to_yaml(r), "again.yaml"))
    assert again == r
    assert recipe_to_dict(Recipe()) == dataclasses.asdict(Recipe())


def test_empty_file_gives_defaults(tmp_path):
    assert load_recipe(write(tmp_path, "")) == Recipe()


def test_unknown_key_names_line_and_nearest(tmp_path):
    msg = error_of(load_recipe, write(tmp_path, "optim:\n  lr: 1.0\n  lrr: 2\n"))
    assert msg == f"{tmp_path / 'recipe.yaml'}:3: unknown key 'optim.lrr' (did you mean 'optim.lr'?)"
    msg = error_of(load_recipe, write(tmp_path, "optimm:\n  lr: 1.0\n"))
    assert "unknown key 'optimm' (did you mean 'optim'?)" in msg
    msg = error_of(load_recipe, write(tmp_path, "data:\n  sources:\n    - kind: text\n      pth: a.txt\n"))
    assert ":4: unknown key 'data.sources.0.pth' (did you mean 'data.sources.0.path'?)" in msg


def test_wrong_type_names_key_expected_and_got(tmp_path):
    msg = error_of(load_recipe, write(tmp_path, "train:\n  seed: 1\n  steps: many\n"))
    assert msg.endswith("recipe.yaml:3: train.steps: expected int, got str 'many'")
    msg = error_of(load_recipe, write(tmp_path, "train:\n  device: tpu\n"))
    assert "train.device: expected one of 'auto', 'cpu', 'cuda', got str 'tpu'" in msg
    msg = error_of(load_recipe, write(tmp_path, "eval:\n  passkey_lengths: [1, x]\n"))
    assert "eval.passkey_lengths.1: expected int, got str 'x'" in msg
    msg = error_of(load_recipe, write(tmp_path, "optim: 3\n"))
    assert "optim: expected a mapping (OptimSection), got int 3" in msg
    # bool is not an int, even though Python says it is.
    assert "expected int, got bool" in error_of(load_recipe, write(tmp_path, "train:\n  steps: true\n"))


def test_malformed_yaml_names_the_line(tmp_path):
    msg = error_of(load_recipe, write(tmp_path, "model:\n  source: a\noptim:\n  lr: [1\n  eps: 2\n"))
    assert msg.startswith(f"{tmp_path / 'recipe.yaml'}:5: not valid YAML")
    assert "a recipe is a mapping" in error_of(load_recipe, write(tmp_path, "- a\n- b\n"))
    assert "no such recipe file" in error_of(load_recipe, tmp_path / "nope.yaml")


def test_overrides_are_type_checked():
    r = Recipe()
    assert apply_override(r, "optim.lr=1e-4").optim.lr == pytest.approx(1e-4)
    assert apply_override(r, "optim.lr=1").optim.lr == 1.0  # int accepted for float
    assert apply_override(r, "memory.chunk_size=128").memory.chunk_size == 128
    assert apply_override(r, "memory.chunk_size=null").memory.chunk_size is None
    assert apply_override(r, "eval.passkey_lengths=[1024, 2048]").eval.passkey_lengths == [1024, 2048]
    assert apply_override(r, "trainable.mode=lora").trainable.mode == "lora"
    assert apply_override(r, "data.planner={uniform: 1}").data.planner == {"uniform": 1.0}
    two = apply_override(r, "data.sources=[{kind: text, path: a.txt}, {kind: text, path: b.txt}]")
    assert apply_override(two, "data.sources.1.weight=2.5").data.sources[1].weight == 2.5
    assert r == Recipe()  # overrides copy, never mutate

    assert error_of(apply_override, r, "optim.lrr=1e-4") == \
        "override 'optim.lrr=1e-4': unknown key 'optim.lrr' (did you mean 'optim.lr'?)"
    assert "train.steps: expected int, got float 1.5" in error_of(apply_override, r, "train.steps=1.5")
    assert "expected one of 'memory', 'lora', 'full'" in error_of(apply_override, r, "trainable.mode=all")
    assert "memory.chunk_size: expected int, got str 'big'" in error_of(apply_override, r, "memory.chunk_size=big")
    assert "expected key.sub=value" in error_of(apply_override, r, "optim.lr")
    assert "not an index" in error_of(apply_override, r, "data.sources.0.weight=2")
    assert "not valid YAML" in error_of(apply_override, r, "optim.betas=[0.9")


def test_load_applies_overrides_then_validates(tmp_path):
    p = write(tmp_path, GOOD)
    assert load_recipe(p, ["optim.lr=3e-4", "data.seed=5"]).data.seed == 5
    assert "data.min_chunks" in error_of(load_recipe, p, ["data.min_chunks=20", "data.max_chunks=4"])
    assert "needs 'filler'" in error_of(load_recipe, p, ["data.sources.0.filler=[]"])
    assert "unknown strategy 'zigzag'" in error_of(load_recipe, p, ["data.planner={zigzag: 1}"])
    assert "data.sources.1.weight: must be > 0" in error_of(load_recipe, p, ["data.sources.1.weight=0"])
    assert "data.sources.0.passage_tokens: must be [low, high]" in error_of(
        load_recipe, p, ["data.sources.0.passage_tokens=[50, 10]"])
    assert load_recipe(p, ["data.sources.0.keys=repeat"]).data.sources[0].keys == "repeat"
    assert "data.sources.1.keys: only a passkey source draws keys, this one is chat_jsonl" in error_of(
        load_recipe, p, ["data.sources.1.keys=distinct"])
    assert "expected one of 'any', 'repeat', 'distinct'" in error_of(load_recipe, p, ["data.sources.0.keys=odd"])
    assert "memory.chunk_size: must be >= 1" in error_of(load_recipe, p, ["memory.chunk_size=0"])
    assert "train.gate_dilation: must be >= 1" in error_of(load_recipe, p, ["train.gate_dilation=0.5"])


def test_memory_section_overrides_comet_config():
    r = apply_override(apply_override(Recipe(), "memory.chunk_size=256"), "memory.temp_stride=0")
    cfg = r.memory.apply(CometConfig(chunk_size=512, global_slots=8))
    assert (cfg.chunk_size, cfg.global_slots, cfg.temp_stride) == (256, 8, 0)
    bad = apply_override(Recipe(), "memory.temp_stride=-1")
    with pytest.raises(RecipeError, match="temp_stride"):
        bad.memory.apply(CometConfig())


def test_fingerprint_ignores_resume_knobs_only():
    base = recipe_fingerprint(Recipe())
    assert len(base) == 64 and base == recipe_fingerprint(Recipe())
    # the value before train.fifo_dropout existed: checkpoints written then still resume
    assert base == "33b8cccf8f3c7ecce7ec8773fc56368ed4a3e0912a9da8193d4519d86ccafe47"
    for same in ("train.steps=99", "train.output_dir=elsewhere", "checkpoint.every=3", "eval.samples=2",
                 "parallel.nproc=2", "train.log_every=1", "train.device=cpu"):
        assert recipe_fingerprint(apply_override(Recipe(), same)) == base, same
    for differs in ("optim.lr=1e-3", "data.seed=1", "train.seed=1", "memory.chunk_size=64",
                    "trainable.mode=full", "data.max_tokens=100", "model.source=x", "train.fifo_dropout=0.5",
                    "train.gate_dilation=64", "data.whole_chunks=false"):
        assert recipe_fingerprint(apply_override(Recipe(), differs)) != base, differs


def test_a_source_without_keys_keeps_its_fingerprint(tmp_path):
    """`keys` came after checkpoints existed: at `any` it is left out, so a run checkpointed before
    resumes (the value is GOOD's fingerprint computed by the code before the field, commit 5ebae16)."""
    r = load_recipe(write(tmp_path, GOOD))
    assert recipe_fingerprint(r) == "fb0952a87d80861aeff2fbc9b04d5dab5222717715bbd845874680800a9dcbb3"
    assert recipe_fingerprint(apply_override(r, "data.sources.0.keys=repeat")) != recipe_fingerprint(r)

