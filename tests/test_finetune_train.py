"""`comet finetune`: the training loop on a tiny random model, checkpoints and resume, trainable
sets, export, dry-run, one-line errors, and (when parallel.py is there) two pipeline ranks."""
import importlib.util
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from comet_cli.cli import main
from comet_cli.finetune import checkpoint
from comet_cli.finetune import train as T
from comet_cli.finetune.config import load_recipe
from comet_cli.finetune.planning import plan_sample_chunks

WORDS = ("the sea ship whale captain harbour rope sail storm island morning letter sister dance ball "
         "house garden road river bridge lantern winter").split()

RECIPE = """\
model: {{source: "tiny-random:llama"}}
memory: {{chunk_size: 64}}
data:
  max_tokens: 256
  min_chunks: 2
  max_chunks: 4
  planner: {{fixed: 1.0}}
  sources:
    - {{kind: text, paths: [{text}]}}
{extra}
trainable: {{mode: memory}}
optim: {{lr: 1.0e-2, warmup_steps: 0, schedule: constant}}
train: {{steps: 6, log_every: 1, output_dir: {out}, device: cpu}}
checkpoint: {{every: 3, keep: 2}}
eval: {{every: 0, samples: 0}}
"""


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny matrices: threads only add contention (and other test processes share the cores).
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def recipe_file(tmp_path):
    from tests.helpers_models import need_smollm2

    need_smollm2()  # tiny-random models use the SmolLM2 vocabulary

    def make(words: int = 170, extra: str = "", name: str = "recipe.yaml", out: str = "run") -> Path:
        rng = random.Random(0)
        sentences = [" ".join(rng.choice(WORDS) for _ in range(9)).capitalize() + "." for _ in range(words // 9)]
        (tmp_path / "book.txt").write_text(" ".join(sentences) + "\n")
        path = tmp_path / name
        path.write_text(RECIPE.format(text="book.txt", out=tmp_path / out, extra=extra))
        return path
    return make


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
        raise SystemExit(0)
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err


def losses(out_dir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows}


def test_memory_mode_learns_changes_only_memory_and_exports(recipe_file, tmp_path):
    from comet_models.convert import MEMORY_FILE, load_comet

    path = recipe_file(extra="", out="run")
    recipe = load_recipe(path, ["train.steps=10", "checkpoint.every=0"])
    run = T.setup(recipe, path.parent, quiet=True)
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    T.train(run)
    per_step = losses(run.output_dir)
    assert len(per_step) == 10
    # one repeated sample: the loss must come down
    assert sum(per_step[s] for s in (8, 9, 10)) < sum(per_step[s] for s in (1, 2, 3))

    cfg = run.model.comet_config
    new_rows = [cfg.placeholder_id, cfg.temp_beacon_id] + cfg.global_beacon_ids
    after = run.model.state_dict()
    emb_key = next(k for k in after if k.endswith("embed_tokens.weight"))
    old_rows = torch.ones(after[emb_key].shape[0], dtype=torch.bool)
    old_rows[new_rows] = False
    assert torch.equal(after[emb_key][old_rows], before[emb_key][old_rows])
    assert not torch.equal(after[emb_key][new_rows], before[emb_key][new_rows])
    tied = {k for k, v in after.items() if v.data_ptr() == after[emb_key].data_ptr()}  # the tied lm_head
    for k, v in after.items():
        if "comet_memory" in k and "weight" in k and "norm" not in k:
            assert not torch.equal(v, before[k]), k
        elif "comet_memory" not in k and k not in tied:
            assert torch.equal(v, before[k]), f"base weight {k} changed"

    written = T.export(run)
    folder = Path(written["model"])
    model, _ = load_comet(folder)
    untrained, _ = load_comet(run.model_dir)
    assert model.comet_fingerprint != untrained.comet_fingerprint
    assert model.comet_fingerprint == json.loads((folder / "config.json").read_text())["comet"]["fingerprint"]
    with safe_open(str(tmp_path / "run" / "memory.safetensors"), "pt") as f:
        assert "10 steps" in f.metadata()["training"]
        assert all("comet_memory" in k or k.startswith("comet_new_token_rows") for k in f.keys())
    # memory mode keeps the base weights file: only comet_memory.safetensors was replaced
    assert (folder / "model.safetensors").read_bytes() == (run.model_dir / "model.safetensors").read_bytes()
    assert (folder / MEMORY_FILE).read_bytes() != (run.model_dir / MEMORY_FILE).read_bytes()
    # a run from a trained folder: the folder (`comet info`) names the whole lineage, memory.safetensors
    # (what `comet_models.ship` stacks) this run alone
    note = checkpoint.source_training(folder)
    assert "10 steps" in note and checkpoint.source_training(run.model_dir) is None
    again = checkpoint.export_model(run.model, run.tset, folder, tmp_path / "next", "stage two")
    assert checkpoint.source_training(Path(again["model"])) == f"{note} then stage two"
    comet = json.loads((Path(again["model"]) / "config.json").read_text())["comet"]
    assert comet["training"] == f"{note} then stage two"
    with safe_open(again["memory_weights"], "pt") as f:
        assert f.metadata()["training"] == "stage two"


def test_resume_gives_the_uninterrupted_losses(recipe_file, tmp_path, capsys, monkeypatch):
    path = recipe_file(words=600, out="straight")
    code, _, err = run_cli(["finetune", path, "--quiet"], capsys)
    assert code == 0, err
    straight = losses(tmp_path / "straight")

    broken = tmp_path / "broken"
    real_step = T.train_step

    def crash_at_4(run, step):
        if step == 4:
            raise KeyboardInterrupt
        return real_step(run, step)
    monkeypatch.setattr(T, "train_step", crash_at_4)
    code, _, err = run_cli(["finetune", path, f"train.output_dir={broken}", "--quiet"], capsys)
    assert code == 130 and f"continue with --resume {broken}" in err
    assert sorted(p.name for p in (broken / "checkpoints").iterdir()) == ["step-3"]
    monkeypatch.setattr(T, "train_step", real_step)
    # no train.output_dir: the resumed run goes on in its own folder, not in the recipe's ("straight")
    code, _, err = run_cli(["finetune", path, "--resume", broken / "checkpoints" / "step-3", "--quiet"], capsys)
    assert code == 0, err
    assert losses(tmp_path / "straight") == straight
    resumed = losses(broken)
    assert list(resumed) == [1, 2, 3, 4, 5, 6]
    assert resumed == straight  # bit-identical floats, step by step
    assert sorted(p.name for p in (broken / "checkpoints").iterdir()) == ["step-3", "step-6"]


def test_time_budget_stops_checkpoints_exports_and_resumes(recipe_file, tmp_path, capsys, monkeypatch):
    """train.max_minutes: a run out of time stops after the step that used it up, saves a
    checkpoint there, exports, and decays the cosine LR by time; --resume goes on to train.steps."""
    path = recipe_file(words=600, out="timed")
    clock = {"t": 1000.0}
    monkeypatch.setattr(T.time, "time", lambda: clock["t"])
    real_step = T.train_step

    def slow_step(run, step):  # each step takes 25 s of the simulated clock
        clock["t"] += 25.0
        return real_step(run, step)
    monkeypatch.setattr(T, "train_step", slow_step)
    code, _, err = run_cli(["finetune", path, "train.max_minutes=1", "optim.schedule=cosine", "--quiet"], capsys)
    assert code == 0, err
    out = tmp_path / "timed"
    assert "max_minutes (1) used up at step 3/6" in err
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    # step 2 had used 50 s of 60: the LR follows time (cosine at 5/6), not steps (2/6)
    assert rows[1]["lr"] == pytest.approx(1e-2 * 0.5 * (1 + __import__("math").cos(__import__("math").pi * 50 / 60)))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-3"]
    assert (out / "memory.safetensors").is_file()
    code, _, err = run_cli(["finetune", path, "optim.schedule=cosine", "--resume", out, "--quiet"], capsys)
    assert code == 0, err
    assert [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()][-1] == 6


def test_fifo_dropout_trains_through_global_memory_only(recipe_file, tmp_path):
    """train.fifo_dropout=1: every sample without temporary memory, so the FIFO's modules get no
    gradient and stay as they were while the global memory trains; the draws are per (seed, step)."""
    path = recipe_file(out="run")
    recipe = load_recipe(path, ["train.steps=4", "checkpoint.every=0", "train.fifo_dropout=1.0"])
    run = T.setup(recipe, path.parent, quiet=True)
    before = {k: v.clone() for k, v in run.model.state_dict().items() if "comet_memory" in k}
    T.train(run)
    rows = [json.loads(line) for line in (run.output_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["fifo_dropped"] for r in rows] == [1, 1, 1, 1]
    assert all(r["loss_no_fifo"] == r["loss"] for r in rows)
    assert "fifo dropout 1" in T.training_note(recipe, 4)
    after = run.model.state_dict()
    for k, v in before.items():
        if "temp_rla.down" in k or "temp_norm" in k:
            assert torch.equal(after[k], v), k
        elif "gate" in k or "global_rla.down" in k:
            assert not torch.equal(after[k], v), k
    half = load_recipe(path, ["train.fifo_dropout=0.5"])
    run.recipe = half
    draws = [T.keep_temp(run, step, 0) for step in range(1, 201)]
    assert draws == [T.keep_temp(run, step, 0) for step in range(1, 201)]
    assert 70 < sum(draws) < 130


def test_gate_dilation_draws_log_uniform_powers_and_trains(recipe_file):
    """train.gate_dilation=D: each sample's gate power is log-uniform in [1, D], the same on a rerun
    (per seed, step, sample); off (1) it is exactly 1; a dilated run trains the gates and says so."""
    path = recipe_file(out="run")
    recipe = load_recipe(path, ["train.steps=3", "checkpoint.every=0", "train.gate_dilation=64"])
    run = T.setup(recipe, path.parent, quiet=True)
    powers = [T.gate_power(run, step, 0) for step in range(1, 401)]
    assert powers == [T.gate_power(run, step, 0) for step in range(1, 401)]
    assert all(1.0 <= m <= 64.0 for m in powers)
    assert 120 < sum(m < 8.0 for m in powers) < 280  # log-uniform: half below sqrt(64)
    before = {k: v.clone() for k, v in run.model.state_dict().items() if "comet_memory.gate" in k}
    T.train(run)
    after = run.model.state_dict()
    assert all(not torch.equal(after[k], v) for k, v in before.items())
    assert "gate dilation up to 64" in T.training_note(recipe, 3)
    run.recipe = load_recipe(path, [])
    assert {T.gate_power(run, step, 0) for step in range(1, 50)} == {1.0}


def test_dry_run_prints_recipe_and_plan(recipe_file, capsys):
    path = recipe_file()
    code, out, err = run_cli(["finetune", path, "optim.lr=3e-4", "--dry-run"], capsys)
    assert code == 0, err
    assert "lr: 0.0003" in out and "tiny-random:llama" in out
    assert "chunk_size 64" in out and "chunks/rank" in out
    assert not (path.parent / "run").exists()  # nothing trained, nothing written


@pytest.mark.parametrize("args, message", [
    (["optim.lrr=1"], "did you mean 'optim.lr'"),
    (["train.steps=many"], "expected int"),
    (["data.max_tokens=64"], "not longer than one chunk"),
    (["--nproc", "8"], "8 ranks but the sample has only 4 chunks"),
    (["data.sources.0.paths=[missing.txt]"], "missing.txt: no such data file"),
    (["data.sources.0.kind=chat_jsonl"], "book.txt:1: not valid JSON"),
])
def test_bad_input_is_one_line_before_any_compute(recipe_file, capsys, args, message):
    path = recipe_file()
    code, out, err = run_cli(["finetune", path, *args], capsys)
    assert code == 1 and message in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not (path.parent / "run" / "metrics.jsonl").exists()


def test_resume_from_another_recipe_fails_in_one_line(recipe_file, tmp_path, capsys):
    path = recipe_file()
    ckpt = tmp_path / "other" / "checkpoints" / "step-2"
    ckpt.mkdir(parents=True)
    (ckpt / "state.json").write_text(json.dumps({"step": 2, "data_position": 2, "fingerprint": "0" * 64}))
    code, _, err = run_cli(["finetune", path, "--resume", tmp_path / "other"], capsys)
    assert code == 1 and "different recipe" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_malformed_yaml_and_unknown_recipe(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {source: default\ntrain: [\n")
    code, _, err = run_cli(["finetune", bad], capsys)
    assert code == 1 and "not valid YAML" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(["finetune", "no-such-recipe"], capsys)
    assert code == 1 and "tiny-smoke" in err


def test_shipped_recipes_load():
    from comet_recipes import RECIPES_DIR

    names = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
    assert {"tiny-smoke", "smollm2-passkey", "smollm2-books", "qwen3-gpu"} <= set(names)
    for p in RECIPES_DIR.glob("*.yaml"):
        assert p.read_text().startswith("# comet finetune"), p
        load_recipe(p)


@pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft (the lora extra) is not installed")
def test_lora_export_merges_adapters(recipe_file, tmp_path):
    from comet_models.convert import load_comet

    path = recipe_file(out="lora")
    recipe = load_recipe(path, ["trainable.mode=lora", "trainable.lora_rank=4", "trainable.lora_targets=[q_proj, v_proj]",
                                "train.steps=2", "checkpoint.every=0"])
    run = T.setup(recipe, path.parent, quiet=True)
    assert any("lora_A" in n for n, _ in run.tset.other) and run.tset.memory
    T.train(run)
    written = T.export(run)
    model, _ = load_comet(written["model"])
    base, _ = load_comet(run.model_dir)
    q = "model.layers.0.base_layer.self_attn.q_proj.weight"
    k = "model.layers.0.base_layer.self_attn.k_proj.weight"
    sd, sd0 = model.state_dict(), base.state_dict()
    assert not torch.equal(sd[q], sd0[q]) and torch.equal(sd[k], sd0[k])
    with safe_open(written["lora"], "pt") as f:
        assert f.keys() and all("lora_" in key for key in f.keys())


@pytest.mark.slow
def test_two_ranks_match_one_process_at_step_1(recipe_file, tmp_path):
    path = recipe_file(out="one")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "comet_cli.cli", "finetune", str(path), "train.steps=1", "--quiet", "--no-export"]
    one = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert one.returncode == 0, one.stderr
    two = subprocess.run(cmd + [f"train.output_dir={tmp_path / 'two'}", "--nproc", "2"], env=env,
                         capture_output=True, text=True, timeout=240)
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = losses(tmp_path / "one")[1], losses(tmp_path / "two")[1]
    assert b == pytest.approx(a, rel=1e-5)


def test_opening_tokens_close_the_frame_as_a_chunk_of_its_own():
    from comet_cli.finetune.config import DataSection
    from comet_cli.finetune.data import Sample

    sample = Sample(list(range(300)), [-100] * 300)
    plain = DataSection(max_chunks=8, planner={"fixed": 1.0})
    opened = DataSection(max_chunks=8, planner={"fixed": 1.0}, opening_tokens=24)
    for step in range(1, 6):
        a = plan_sample_chunks(sample, 64, plain, 0, step, 0, 1, frozenset())
        b = plan_sample_chunks(sample, 64, opened, 0, step, 0, 1, frozenset())
        assert sum(a) == sum(b) == 300 and a[0] == 64
        assert b[0] == 24 and b[1:] == plan_sample_chunks(Sample(list(range(276)), [-100] * 276), 64,
                                                            plain, 0, step, 0, 1, frozenset())
    short = Sample(list(range(20)), [-100] * 20)  # no longer than the opening: planned as usual
    assert plan_sample_chunks(short, 64, opened, 0, 1, 0, 1, frozenset()) == [20]
