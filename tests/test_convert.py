"""`comet convert`, `comet info`, loading back, memory-weights files and bad input."""
import json

import pytest
import torch
from safetensors import safe_open

from comet_cli.cli import main
from comet_models.convert import MEMORY_FILE, load_comet, load_memory_weights, save_memory_weights
from comet_models.runtime import chat_frame, feed, generate, new_state, stop_ids


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(list(args))
        raise SystemExit(0)
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err


def test_convert_sharded_folder_and_load_back(tiny_comet_folder, tiny_hf_folder):
    assert len(list(tiny_hf_folder.glob("model-*.safetensors"))) > 1  # the source really was sharded
    conf = json.loads((tiny_comet_folder / "config.json").read_text())
    assert conf["comet"]["chunk_size"] == 64 and conf["comet"]["fingerprint"]
    model, tok = load_comet(tiny_comet_folder)
    assert tok.convert_tokens_to_ids("<beacon>") == model.comet_config.temp_beacon_id
    assert model.comet_fingerprint == conf["comet"]["fingerprint"]


def test_memory_weights_file_holds_only_added_parameters(tiny_comet_folder):
    with safe_open(str(tiny_comet_folder / MEMORY_FILE), "pt") as f:
        keys = list(f.keys())
    assert keys and all("comet_memory" in k or k.startswith("comet_new_token_rows") for k in keys)
    assert not any("self_attn" in k or "mlp" in k for k in keys)


def test_memory_weights_round_trip_gives_bit_identical_logits(tiny_comet_folder, tmp_path):
    model, tok = load_comet(tiny_comet_folder)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "comet_memory" in n:
                p.add_(torch.randn_like(p) * 0.05)
    path = tmp_path / "mem.safetensors"
    save_memory_weights(model, path)
    fresh, _ = load_comet(tiny_comet_folder)
    load_memory_weights(fresh, path)
    ids = tok("hello world " * 40, add_special_tokens=False)["input_ids"]
    a = feed(model, new_state(model), ids)
    b = feed(fresh, new_state(fresh), ids)
    assert a.sha256() == b.sha256()
    assert list(generate(model, a, ids[:5], 5)) == list(generate(fresh, b, ids[:5], 5))
    from comet_models.convert import model_fingerprint
    # the fingerprint follows the memory weights: states of the untrained model are not valid here
    assert fresh.comet_fingerprint == model_fingerprint(model) != load_comet(tiny_comet_folder)[0].comet_fingerprint


def test_cli_convert_and_info(tiny_hf_folder, tmp_path, capsys):
    out = tmp_path / "c"
    code, stdout, _ = run_cli(["convert", str(tiny_hf_folder), "-o", str(out), "--chunk-size", "32"], capsys)
    assert code == 0 and "wrote" in stdout
    code, stdout, _ = run_cli(["info", str(out), "--json"], capsys)
    d = json.loads(stdout)
    assert d["family"] == "llama" and d["layout"]["chunk_size"] == 32
    assert d["parameters"]["added"] > 0 and d["memory_state_bytes"] > 0
    # refuses to overwrite, then replaces with --force
    code, _, err = run_cli(["convert", str(tiny_hf_folder), "-o", str(out)], capsys)
    assert code == 1 and "output folder exists (use --force" in err and "Traceback" not in err
    code, _, _ = run_cli(["convert", str(tiny_hf_folder), "-o", str(out), "--force"], capsys)
    assert code == 0


def test_cli_convert_with_a_sink_token(tiny_hf_folder, tmp_path, capsys, smollm2_tokenizer):
    out = tmp_path / "s"
    code, _, err = run_cli(["convert", str(tiny_hf_folder), "-o", str(out), "--sink-tokens", "1"], capsys)
    assert code == 0, err
    comet = json.loads((out / "config.json").read_text())["comet"]
    assert comet["sink_tokens"] == 1 and comet["sink_id"] == smollm2_tokenizer.bos_token_id
    code, stdout, _ = run_cli(["info", str(out), "--json"], capsys)
    lay = json.loads(stdout)["layout"]
    assert lay["sink_tokens"] == 1 and lay["max_positions_per_chunk"] == 1 + 2 * 32 + 64 + 512 + 32
    from comet_models.convert import load_comet

    model, _ = load_comet(out)
    assert model.comet_config.sink_tokens == 1


def test_cli_convert_with_an_initial_state(tiny_hf_folder, tmp_path, capsys):
    out = tmp_path / "i"
    code, _, err = run_cli(["convert", str(tiny_hf_folder), "-o", str(out), "--initial-state"], capsys)
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["comet"]["initial_state"] is True
    code, stdout, _ = run_cli(["info", str(out), "--json"], capsys)
    assert json.loads(stdout)["layout"]["initial_state"] is True
    from comet_models.convert import load_comet
    from comet_models.inject import memory_layers

    model, _ = load_comet(out)  # the zero states travel in comet_memory.safetensors and load strictly
    states = [layer.comet_memory.initial_state for layer in memory_layers(model)]
    assert model.comet_config.initial_state and all(s is not None and not s.any() for s in states)


@pytest.mark.parametrize("case", ["missing", "no_config", "corrupt_safetensors", "corrupt_gguf", "unsupported",
                                  "not_a_model_file"])
def test_bad_sources_fail_with_one_line_and_leave_nothing(case, tiny_hf_folder, tmp_path, capsys):
    import shutil
    src = tmp_path / "src"
    expect = {"missing": "no such file or folder", "no_config": "has no config.json",
              "corrupt_safetensors": "cannot load model", "corrupt_gguf": "not a GGUF file",
              "unsupported": "model_type 'gpt2' is not supported (supported: gemma3_text, llama",
              "not_a_model_file": "expected a model folder or a .gguf file"}[case]
    if case == "no_config":
        src.mkdir()
    elif case == "corrupt_safetensors":
        shutil.copytree(tiny_hf_folder, src)
        for p in src.glob("*.safetensors"):
            p.write_bytes(b"\x00garbage" * 10)
    elif case == "corrupt_gguf":
        src = tmp_path / "broken.gguf"
        src.write_bytes(b"NOPE" + b"\x00" * 100)
    elif case == "unsupported":
        src.mkdir()
        (src / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    elif case == "not_a_model_file":
        src = tmp_path / "x.txt"
        src.write_text("hi")
    out = tmp_path / "out"
    code, _, err = run_cli(["convert", str(src), "-o", str(out)], capsys)
    assert code == 1
    assert expect in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".out.converting*"))


def test_full_disk_leaves_no_half_written_folder(tiny_hf_folder, tmp_path, capsys, monkeypatch):
    import safetensors.torch as st

    def full(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(st, "save_file", full)
    out = tmp_path / "out"
    code, _, err = run_cli(["convert", str(tiny_hf_folder), "-o", str(out)], capsys)
    assert code == 1 and "No space left on device" in err
    assert list(tmp_path.iterdir()) == []


def test_debug_shows_the_traceback(tmp_path, capsys):
    from comet_cli.errors import InputError
    with pytest.raises(InputError):
        main(["--debug", "convert", str(tmp_path / "nope"), "-o", str(tmp_path / "o")])


@pytest.mark.slow
@pytest.mark.real_model
def test_real_smollm2_converts_and_generates(default_comet_folder):
    model, tok = load_comet(default_comet_folder)
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 30
    pre, post = chat_frame(tok, "What is the capital of France?")
    st = feed(model, new_state(model), pre)
    answer = tok.decode(list(generate(model, st, post, max_new_tokens=12, stop=stop_ids(tok))))
    assert "Paris" in answer


def test_info_sums_up_a_packed_lineage():
    from comet_cli.commands.info import training_summary
    from comet_models.ship import STAGE_SEPARATOR

    one = "passkey data, 400 steps, lora r16 on q_proj, lr 0.0002"
    assert training_summary(one) == one
    three = STAGE_SEPARATOR.join([one, "text data, 120 steps, lr 0.0001", "chat data, 80 steps, lr 0.0001"])
    out = training_summary(three)
    assert out.startswith("3 stages, 600 steps in all") and out.endswith("the last: chat data, 80 steps, lr 0.0001")
