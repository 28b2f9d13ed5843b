"""End to end with the embedded default model (SmolLM2-135M): read, answer, reuse for a second question."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.test_read_support import comet  # noqa: F401 (fixture)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pride_and_prejudice_ch1-5.txt"


@pytest.fixture(scope="session")
def default_model(tmp_path_factory) -> str:
    """Convert the embedded default once per session (about 20 s) into a shared folder."""
    from comet_models.convert import convert_model

    out = tmp_path_factory.mktemp("default") / "smollm2"
    return str(convert_model(None, out))


@pytest.mark.slow
@pytest.mark.real_model
def test_default_model_answers_then_reuses_memory(comet, default_model, tmp_path):
    doc = tmp_path / "opening.txt"
    doc.write_text(EXAMPLE.read_text()[:3000])  # ~750 tokens: two chunks of 512
    args = ("--model", default_model, "--json", "--max-new-tokens", "12")
    code, out, err = comet("ask", doc, "Who is Mr. Bingley?", *args)
    assert code == 0, err
    first = json.loads(out)
    assert first["chunks"] >= 1 and first["answer"].strip()
    assert first["reads"] == 3 and len(first["state_files"]) == 3  # --reads auto: a short multi-chunk input
    code, out, err = comet("ask", doc, "Where is Netherfield Park?", *args)
    second = json.loads(out)
    assert second["reused_state"] is True and second["tokens_read_this_run"] == 0
    assert second["state_sha256"] == first["state_sha256"]
    assert second["seconds"] < first["seconds"]
    assert os.path.dirname(second["state_file"]).endswith(json.loads(
        (Path(default_model) / "config.json").read_text())["comet"]["fingerprint"])


@pytest.mark.slow
@pytest.mark.real_model
def test_default_model_reads_three_times_and_reuses_every_read(comet, default_model, tmp_path):
    """`--reads 3` end to end: the real tokenizer's shift prose, three cached states reused by a second ask."""
    from comet_cli.finetune.synthetic import PASSKEY_NEEDLE, PASSKEY_QUESTION, insert_at

    doc = tmp_path / "key.txt"
    doc.write_text(insert_at(EXAMPLE.read_text()[:5000], 0.5, PASSKEY_NEEDLE.format(key="40721")))
    args = ("ask", doc, PASSKEY_QUESTION, "--model", default_model, "--json", "--max-new-tokens", "12", "--reads", "3")
    code, out, err = comet(*args)
    assert code == 0, err
    first = json.loads(out)
    assert first["reads"] == 3 and first["chunks"] >= 2 and len(set(first["state_files"])) == 3
    assert all(Path(p).is_file() for p in first["state_files"])
    again = json.loads(comet(*args)[1])
    assert again["reused_state"] is True and again["answer"] == first["answer"]
