"""`comet summarize / ask / plan` on a tiny model: outputs, reuse of states, and bad inputs."""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from tests.test_read_support import comet, one_thread, tiny_model, write_text  # noqa: F401 (fixtures)


def _json(out: str) -> dict:
    return json.loads(out)


def test_summarize_json_writes_a_cached_state(comet, tiny_model, tmp_path):
    doc = write_text(tmp_path / "doc.txt", 120)
    code, out, err = comet("summarize", doc, "--model", tiny_model, "--json", "--max-new-tokens", "5")
    assert code == 0, err
    d = _json(out)
    assert set(d) >= {"summary", "model", "tokens_read", "chunks", "sources", "seconds", "state_file",
                      "state_sha256"}
    assert d["sources"] == [{"path": str(doc), "lines": [1, 120], "tokens": d["sources"][0]["tokens"]}]
    assert d["tokens_read"] > d["sources"][0]["tokens"] > 0 and d["chunks"] >= 1
    state = Path(d["state_file"])
    assert state.is_file() and state.parent.parent.name == "states"
    assert not Path(str(state) + ".partial").exists()


def test_second_question_reuses_the_state(comet, tiny_model, tmp_path):
    doc = write_text(tmp_path / "doc.txt", 100)
    first = _json(comet("ask", doc, "What is read?", "--model", tiny_model, "--json", "--max-new-tokens", "3")[1])
    code, out, err = comet("ask", doc, "Another question?", "--model", tiny_model, "--json", "--max-new-tokens", "3")
    second = _json(out)
    assert code == 0 and "answer" in second
    assert first["reused_state"] is False and second["reused_state"] is True
    assert second["tokens_read_this_run"] == 0
    assert second["state_sha256"] == first["state_sha256"]
    # summarize shares the memory too: the chat frame's prefix does not depend on the instruction
    third = _json(comet("summarize", doc, "--model", tiny_model, "--json", "--max-new-tokens", "2")[1])
    assert third["reused_state"] is True


def test_bfloat16_reads_keep_their_own_cached_state(comet, tiny_model, tmp_path):
    doc = write_text(tmp_path / "doc.txt", 60)
    ask = ("ask", doc, "Q?", "--model", tiny_model, "--json", "--max-new-tokens", "2")
    b1, b2 = (_json(comet(*ask, "--dtype", "bfloat16")[1]) for _ in range(2))
    f32 = _json(comet(*ask)[1])
    assert (b1["reused_state"], b2["reused_state"], f32["reused_state"]) == (False, True, False)
    assert b1["state_file"] == b2["state_file"] != f32["state_file"]
    assert comet(*ask, "--dtype", "float16")[0] == 2  # click's one-line usage error


def test_text_output_streams_to_stdout_only(comet, tiny_model, tmp_path):
    doc = write_text(tmp_path / "doc.txt", 20)
    code, out, err = comet("ask", doc, "Q?", "--model", tiny_model, "--max-new-tokens", "4", "--no-cache")
    assert code == 0 and out.endswith("\n")
    # stderr is not a terminal: no progress bar; a short read logs only that --reads auto reads it thrice
    assert "{" not in out[:1] and err.splitlines() == [
        f"{err.split()[0]} tokens: reading them 2 more times with shifted chunk boundaries, for exact details "
        "(--reads 1 reads once)"]
    assert comet("ask", doc, "Q?", "--model", tiny_model, "--max-new-tokens", "4", "--no-cache",
                 "--reads", "1")[2] == ""


def test_long_read_without_a_terminal_logs_plain_progress_lines(comet, tiny_model, tmp_path, monkeypatch):
    from comet_cli.commands import read

    monkeypatch.setattr(read, "LOG_EVERY_S", 0.0)  # every progress report is "a minute later"
    doc = write_text(tmp_path / "doc.txt", 40)
    code, out, err = comet("ask", doc, "Q?", "--model", tiny_model, "--max-new-tokens", "2", "--no-cache")
    assert code == 0 and "read " in err and " tokens (" in err and "doc.txt l." in err and "tok/s" in err
    assert "read " not in out
    code, _, err = comet("ask", doc, "Q?", "--model", tiny_model, "--max-new-tokens", "2", "--no-cache", "-q")
    assert code == 0 and err == ""  # --quiet: nothing


def test_folder_reads_files_in_order_with_globs(comet, tiny_model, tmp_path):
    folder = tmp_path / "logs"
    write_text(folder / "b.log", 30)
    write_text(folder / "a.log", 30, seed=3)
    write_text(folder / "sub" / "c.log", 10, seed=5)
    write_text(folder / "notes.md", 10)
    (folder / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0")
    code, out, err = comet("summarize", folder, "--model", tiny_model, "--json", "--include", "*.log",
                           "--exclude", "sub", "--max-new-tokens", "2")
    assert code == 0, err
    assert [s["path"] for s in _json(out)["sources"]] == ["a.log", "b.log"]


def test_stdin(comet, tiny_model, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"line one\nline two\n" * 50)))
    code, out, err = comet("ask", "-", "Q?", "--model", tiny_model, "--json", "--max-new-tokens", "2")
    assert code == 0, err
    d = _json(out)
    assert d["sources"][0]["path"] == "<stdin>" and d["state_file"] is None
    assert d["chunks"] > 0 and d["reads"] == 1  # --reads auto reads stdin (of several chunks) once


def test_plan_and_dry_run(comet, tiny_model, tmp_path):
    doc = write_text(tmp_path / "doc.txt", 200)
    code, out, err = comet("plan", doc, "--model", tiny_model, "--json")
    assert code == 0, err
    p = _json(out)
    assert p["estimated_tokens"] == -(-doc.stat().st_size // 4)
    assert p["chunks"] == -(-p["estimated_tokens"] // 64)
    assert p["tokens_per_second"] > 0 and p["predicted_seconds"] > 0
    assert p["peak_memory_bytes"] >= p["model_bytes"] + p["state_bytes"]
    half = _json(comet("plan", doc, "--model", tiny_model, "--json", "--dtype", "bfloat16")[1])
    assert (half["model_bytes"] * 2, half["state_bytes"] * 2) == (p["model_bytes"], p["state_bytes"] + 16)
    code, out, err = comet("summarize", doc, "--model", tiny_model, "--dry-run")
    assert code == 0 and "chunks" in out and "tokens/s" in out and "peak" in out
    assert not (Path(os.environ["COMET_HOME"]) / "states").exists() or "summary" not in out


# -- bad input: one line naming the file, exit 1, no traceback ---------------------------------

def _fails(comet, *args, expect: str):
    code, out, err = comet(*args)
    assert code == 1, (out, err)
    assert expect in err, err
    assert "Traceback" not in err and out == ""
    return err


def test_missing_path(comet, tiny_model, tmp_path):
    _fails(comet, "summarize", tmp_path / "nope.txt", "--model", tiny_model,
           expect=f"{tmp_path / 'nope.txt'}: no such file or directory")


def test_empty_file(comet, tiny_model, tmp_path):
    (tmp_path / "empty.txt").write_text("")
    _fails(comet, "ask", tmp_path / "empty.txt", "Q?", "--model", tiny_model, expect="empty.txt: file is empty")


def test_folder_with_nothing_readable(comet, tiny_model, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.png").write_bytes(b"\x89PNG\0\0")
    err = _fails(comet, "summarize", tmp_path / "d", "--model", tiny_model, expect="no readable files")
    assert "warning" in err and "x.png" in err


def _pdf(path: Path, pages=("Hello page one.",), password=None, image_page=False):
    pymupdf = pytest.importorskip("pymupdf")
    doc = pymupdf.open()
    for text in pages:
        doc.new_page().insert_text((72, 72), text)
    if image_page:
        pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 8, 8), False)
        doc.new_page().insert_image(pymupdf.Rect(72, 72, 144, 144), pixmap=pix)
    kw = dict(encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw=password, owner_pw=password) if password else {}
    doc.save(str(path), **kw)
    return path


def test_corrupt_pdf(comet, tiny_model, tmp_path):
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.7\n garbage without xref")
    _fails(comet, "summarize", tmp_path / "bad.pdf", "--model", tiny_model, expect="bad.pdf: ")


def test_encrypted_pdf_needs_password(comet, tiny_model, tmp_path):
    pdf = _pdf(tmp_path / "locked.pdf", password="s3cret")
    _fails(comet, "ask", pdf, "Q?", "--model", tiny_model, expect="locked.pdf: encrypted PDF; pass --password")
    code, out, err = comet("ask", pdf, "Q?", "--model", tiny_model, "--password", "s3cret", "--json",
                           "--max-new-tokens", "2")
    assert code == 0, err
    assert _json(out)["sources"][0]["pages"] == [1, 1]


def test_image_only_page_warns_with_page_number(comet, tiny_model, tmp_path):
    pdf = _pdf(tmp_path / "scan.pdf", pages=("Text on page one.",), image_page=True)
    code, out, err = comet("summarize", pdf, "--model", tiny_model, "--json", "--max-new-tokens", "2")
    assert code == 0, err
    assert "scan.pdf: page 2 has no text layer" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied(comet, tiny_model, tmp_path):
    doc = write_text(tmp_path / "secret.txt", 5)
    doc.chmod(0)
    try:
        _fails(comet, "summarize", doc, "--model", tiny_model, expect="secret.txt: permission denied")
    finally:
        doc.chmod(0o644)


def test_state_from_another_model_is_refused_and_kept(comet, tiny_model, tmp_path):
    from comet_models.state import MemoryState

    other = tmp_path / "other.safetensors"
    MemoryState.empty(2, 32, 4, 16, fingerprint="0123456789abcdef").save(other)
    before = other.read_bytes()
    doc = write_text(tmp_path / "doc.txt", 10)
    _fails(comet, "ask", doc, "Q?", "--model", tiny_model, "--state", other,
           expect=f"{other}: state was written by another model")
    assert other.read_bytes() == before


def test_state_of_other_content_is_not_overwritten(comet, tiny_model, tmp_path):
    state = tmp_path / "s.safetensors"
    a, b = write_text(tmp_path / "a.txt", 30), write_text(tmp_path / "b.txt", 30, seed=4)
    assert comet("ask", a, "Q?", "--model", tiny_model, "--state", state, "--max-new-tokens", "1")[0] == 0
    before = state.read_bytes()
    _fails(comet, "ask", b, "Q?", "--model", tiny_model, "--state", state, expect="holds the state of other content")
    assert state.read_bytes() == before


def test_corrupt_state_file(comet, tiny_model, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a state")
    doc = write_text(tmp_path / "doc.txt", 10)
    _fails(comet, "ask", doc, "Q?", "--model", tiny_model, "--state", bad, expect=f"{bad}: not a readable state")


def test_device_option(comet, tiny_model, tmp_path):
    """--device cpu reads as before; a device this machine lacks or a bad name is one line."""
    import torch

    doc = write_text(tmp_path / "doc.txt", 40)
    code, out, err = comet("ask", doc, "what?", "--model", tiny_model, "--json", "--max-new-tokens", "3",
                           "--device", "cpu", "--no-cache")
    assert code == 0, err
    assert isinstance(_json(out)["answer"], str)
    _fails(comet, "ask", doc, "q", "--model", tiny_model, "--device", "tpu",
           expect="--device tpu: not a device (use auto, cpu, cuda or cuda:N)")
    if not torch.cuda.is_available():
        _fails(comet, "ask", doc, "q", "--model", tiny_model, "--device", "cuda",
               expect="--device cuda: no CUDA device is available here (use --device cpu)")


def test_ask_answers_greedily_as_eval_measures_and_takes_a_penalty(comet, tiny_model, tmp_path):
    """`ask` decodes without a repetition penalty by default (a key's repeated digit must stay
    reachable), exactly runtime.generate from the saved state when the answer is longer than a short
    one (search.stream_answer, as here) or with --beam 1; --repetition-penalty P applies P."""
    from comet_cli.modelref import load_model
    from comet_models.runtime import chat_frame, generate, stop_ids
    from comet_models.state import MemoryState

    doc, state = write_text(tmp_path / "doc.txt", 60), tmp_path / "doc.state"
    model, tok, _ = load_model(tiny_model)
    _, suffix = chat_frame(tok, "Q?")
    answers = {}
    for penalty in (None, 1.0, 3.0, "beam1"):
        extra = () if penalty is None else ("--beam", "1") if penalty == "beam1" else ("--repetition-penalty", str(penalty))
        code, out, err = comet("ask", doc, "Q?", "--model", tiny_model, "--json", "--max-new-tokens", "16",
                               "--state", state, *extra)
        assert code == 0, err
        answers[penalty] = _json(out)["answer"]
    saved = MemoryState.load(state)
    expect = {p: tok.decode(list(generate(model, saved, suffix, 16, stop=stop_ids(tok), repetition_penalty=p)),
                            skip_special_tokens=True).strip() for p in (1.0, 3.0)}
    assert answers[None] == answers[1.0] == answers["beam1"] == expect[1.0]
    assert answers[3.0] == expect[3.0]
    assert comet("ask", doc, "Q?", "--model", tiny_model, "--beam", "0")[0] == 2  # 1 to 16
    assert expect[1.0] != expect[3.0]  # the tiny random model repeats itself: the penalty changes it
    # below 1 would reward repeats: a usage error (click: "0.5 is not in the range x>=1.0")
    assert comet("ask", doc, "Q?", "--model", tiny_model, "--repetition-penalty", "0.5")[0] == 2
