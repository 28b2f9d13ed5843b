"""Checkpoints, resume after Ctrl-C or kill -9, growth of appended files, prefix hashing."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_read_support import comet, one_thread, tiny_model, write_text  # noqa: F401 (fixtures)

CRASH = "COMET_TEST_CRASH_AFTER_CHUNKS"


def _read(comet, tiny_model, path, *extra):
    code, out, err = comet("summarize", path, "--model", tiny_model, "--json", "--max-new-tokens", "1", *extra)
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def long_doc(tmp_path):
    # three pieces of at most 16384 characters each
    return write_text(tmp_path / "long.txt", 400)


def test_interrupted_read_resumes_to_the_same_state(comet, tiny_model, long_doc, tmp_path, monkeypatch):
    whole = _read(comet, tiny_model, long_doc, "--state", tmp_path / "whole.safetensors")
    state = tmp_path / "cut.safetensors"
    monkeypatch.setenv(CRASH, "100")
    code, out, err = comet("summarize", long_doc, "--model", tiny_model, "--state", state, "--checkpoint-every", "2")
    assert code == 130 and "interrupted" in err
    partial = Path(str(state) + ".partial")
    assert partial.is_file() and not state.exists()
    meta = _meta(partial)
    assert meta["complete"] is False and 0 < meta["sources"][0]["end"] < long_doc.stat().st_size
    monkeypatch.delenv(CRASH)
    resumed = _read(comet, tiny_model, long_doc, "--state", state)
    assert resumed["reused_state"] is False
    assert 0 < resumed["tokens_read_this_run"] < whole["tokens_read"]
    assert resumed["state_sha256"] == whole["state_sha256"]
    assert resumed["tokens_read"] == whole["tokens_read"] and resumed["chunks"] == whole["chunks"]
    assert resumed["sources"] == whole["sources"]
    assert not partial.exists() and _meta(state)["complete"] is True


def test_kill_9_then_resume_from_the_cache(comet, tiny_model, tmp_path):
    folder = tmp_path / "logs"
    for i in range(3):
        write_text(folder / f"app{i}.log", 100, seed=i)
    env = {**os.environ, "COMET_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "comet_cli.cli", "summarize", str(folder), "--model", tiny_model, "--json",
           "--max-new-tokens", "1", "--checkpoint-every", "1"]
    killed = subprocess.run(cmd, env={**env, CRASH: "50:kill"}, capture_output=True, text=True)
    assert killed.returncode == -9
    partials = list((tmp_path / "home" / "states").rglob("*.partial"))
    assert len(partials) == 1
    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    r, w = json.loads(resumed.stdout), _read(comet, tiny_model, folder, "--no-cache")
    assert 0 < r["tokens_read_this_run"] < w["tokens_read_this_run"]
    assert r["state_sha256"] == w["state_sha256"]
    assert not partials[0].exists()


def test_appended_text_is_read_on_top(comet, tiny_model, tmp_path):
    folder = tmp_path / "logs"
    a, b = write_text(folder / "a.log", 40), write_text(folder / "b.log", 40, seed=2)
    first = _read(comet, tiny_model, folder)
    with open(a, "a") as f:
        f.write("appended line one\nappended line two\n")
    second = _read(comet, tiny_model, folder)
    assert second["reused_state"] is False and second["state_file"] == first["state_file"]
    grown = second["tokens_read"] - first["tokens_read"]
    assert grown == second["tokens_read_this_run"] and 0 < grown < 40
    assert second["sources"][0]["lines"] == [1, 42] and second["sources"][1] == first["sources"][1]
    # a new file is read after the others
    write_text(folder / "0-new.log", 5)
    third = _read(comet, tiny_model, folder)
    assert [s["path"] for s in third["sources"]] == ["a.log", "b.log", "0-new.log"]
    assert third["tokens_read_this_run"] < 200
    fourth = _read(comet, tiny_model, folder)
    assert fourth["reused_state"] is True and fourth["state_sha256"] == third["state_sha256"]


def test_changed_file_is_read_again(comet, tiny_model, tmp_path):
    doc = write_text(tmp_path / "doc.txt", 40)
    first = _read(comet, tiny_model, doc)
    write_text(doc, 40, seed=1)
    second = _read(comet, tiny_model, doc)
    assert second["reused_state"] is False and second["state_sha256"] != first["state_sha256"]
    assert second["tokens_read_this_run"] == second["tokens_read"]


def test_complete_state_survives_an_interrupted_extension(comet, tiny_model, long_doc, tmp_path, monkeypatch):
    state = tmp_path / "s.safetensors"
    first = _read(comet, tiny_model, long_doc, "--state", state)
    before = state.read_bytes()
    with open(long_doc, "a") as f:
        f.write("more text\n" * 1500)
    monkeypatch.setenv(CRASH, "40")
    code, _, _ = comet("summarize", long_doc, "--model", tiny_model, "--state", state, "--checkpoint-every", "1")
    assert code == 130
    assert state.read_bytes() == before
    monkeypatch.delenv(CRASH)
    second = _read(comet, tiny_model, long_doc, "--state", state)
    assert second["tokens_read"] > first["tokens_read"]


def _meta(path: Path) -> dict:
    from comet_models.state import MemoryState

    return MemoryState.load(path).meta


def test_prefix_hasher_matches_readers(tmp_path):
    from comet_cli.readers import prefix_sha256, scan
    from comet_cli.reading.cache import PrefixHasher

    text = write_text(tmp_path / "t.txt", 50)
    gz = tmp_path / "t.log.gz"
    with gzip.open(gz, "wb") as f:
        f.write(text.read_bytes())
    for path in (text, gz):
        src = scan(str(path))[0]
        h = PrefixHasher(src)
        for end in (0, 10, 500, src.size * 10):
            assert h.advance(end) == prefix_sha256(src, end)
        h.close()
    pymupdf = pytest.importorskip("pymupdf")
    doc = pymupdf.open()
    for t in ("one", "two", "three"):
        doc.new_page().insert_text((72, 72), t)
    doc.save(str(tmp_path / "p.pdf"))
    src = scan(str(tmp_path / "p.pdf"))[0]
    h = PrefixHasher(src)
    assert [h.advance(e) for e in (1, 3)] == [prefix_sha256(src, 1), prefix_sha256(src, 3)]
    h.close()


def test_progress_counts_this_run_inside_a_piece(tiny_model, long_doc):
    """A fresh read's progress reports count every token as read in this run, also while one long piece
    is being fed (the rate on the bar is tokens_this_run / seconds: it read ~0 tok/s before)."""
    from comet_cli.readers import scan
    from comet_cli.reading.session import ReadOptions, read_document
    from comet_models.convert import load_comet
    from comet_models.runtime import chat_frame

    model, tok = load_comet(tiny_model)
    seen = []
    res = read_document(model, tok, scan(str(long_doc)), chat_frame(tok, "Q?")[0],
                        ReadOptions(on_progress=seen.append))
    # the document is three pieces: most reports come from inside a piece, one per chunk closed
    assert len(seen) > 10 and all(p.tokens_this_run == p.tokens for p in seen)
    assert seen[-1].tokens == res.state.tokens == res.tokens_this_run
