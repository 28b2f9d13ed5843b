"""Text, gzip and stdin streams: bounded pieces, exact reassembly, provenance, resume."""
import gzip
import hashlib
import io
import re
import sys
import tracemalloc

import pytest

from comet_cli.errors import InputError
from comet_cli.readers import count_estimate, iter_pieces, prefix_sha256, read_source, scan


def source_for(path):
    [src] = scan(str(path))
    return src


def pieces_of(path, **kw):
    return list(read_source(source_for(path), **kw))


def lines_of(data: bytes) -> list[str]:
    """Lines ending at "\\n" only, as line numbers count them (a lone "\\r" is inside a line)."""
    return re.findall(r"[^\n]*\n|[^\n]+\Z", data.decode("utf-8-sig"))


def test_book_reassembles_exactly_in_pieces_cut_at_newlines(shared_data):
    path = shared_data / "books" / "pride_and_prejudice_pg1342.txt"
    data = path.read_bytes()
    pieces = pieces_of(path, max_chars=4000)
    assert "".join(p.text for p in pieces).encode() == data.removeprefix(b"\xef\xbb\xbf")
    assert all(len(p.text) <= 4000 for p in pieces)
    assert all(p.text.endswith("\n") for p in pieces[:-1])
    assert pieces[-1].end == len(data) and pieces[-1].line_end == data.count(b"\n")
    assert [p.line_start for p in pieces[1:]] == [p.line_end + 1 for p in pieces[:-1]]
    lines = lines_of(data)
    assert all(p.text == "".join(lines[p.line_start - 1 : p.line_end]) for p in pieces)


def test_log_line_provenance(shared_data):
    path = shared_data / "logs" / "HDFS" / "HDFS_2k.log"
    lines = lines_of(path.read_bytes())
    pieces = pieces_of(path, max_chars=8000)
    assert len(pieces) > 10
    for p in pieces:
        assert p.text == "".join(lines[p.line_start - 1 : p.line_end])
    assert pieces[-1].line_end == 2000


def test_single_5mb_line_streams_in_bounded_pieces(tmp_path):
    data = bytes(range(97, 123)) * (5 * 1024 * 1024 // 26)
    path = tmp_path / "one_line.txt"
    path.write_bytes(data)
    tracemalloc.start()
    count, total, longest = 0, [], 0
    for p in read_source(source_for(path), max_chars=16384):
        count += 1
        longest = max(longest, len(p.text))
        total.append(hashlib.sha256(p.text.encode()).digest())
        assert p.line_start == p.line_end == 1
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert longest == 16384 and count == -(-len(data) // 16384)
    # The whole line is never held at once: peak memory is a few blocks.
    assert peak < 1_000_000
    joined = b"".join(p.text.encode() for p in pieces_of(path, max_chars=16384))
    assert joined == data


def test_multibyte_characters_are_never_split(tmp_path):
    # 3- and 4-byte characters, no newline, across many 64 KiB blocks and odd piece sizes.
    text = "é€😀a" * 40_000
    path = tmp_path / "utf8.txt"
    path.write_text(text)
    warnings = []
    for max_chars in (7, 1000, 16384):
        pieces = pieces_of(path, max_chars=max_chars, warn=warnings.append)
        assert "".join(p.text for p in pieces) == text
        assert all(len(p.text) <= max_chars for p in pieces)
        assert "\ufffd" not in "".join(p.text for p in pieces)
    assert warnings == []


def test_resume_from_any_piece_end_gives_the_same_later_pieces(tmp_path):
    lines = [("x" * (i * 37 % 300)) + f" line {i}\n" for i in range(400)]
    lines[50] = "y" * 2500 + "\n"  # longer than a piece
    path = tmp_path / "mixed.log"
    path.write_text("".join(lines) + "no newline at the end")
    src = source_for(path)
    full = list(read_source(src, max_chars=1000))
    # The long line 51 comes in parts of max_chars; the piece with its end goes on to line 52.
    long_parts = [p for p in full if p.line_start == 51]
    assert [(p.line_end, len(p.text)) for p in long_parts[:2]] == [(51, 1000), (51, 1000)]
    assert long_parts[2].text.startswith("y" * 500 + "\n" + "x") and long_parts[2].line_end > 51
    for i in range(0, len(full), 7):
        assert list(read_source(src, start=full[i].end, max_chars=1000)) == full[i + 1 :]


def test_continue_a_log_that_grew(tmp_path):
    path = tmp_path / "app.log"
    path.write_text("".join(f"event {i}\n" for i in range(100)))
    src = source_for(path)
    first = list(read_source(src))
    digest = prefix_sha256(src, first[-1].end)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    with path.open("a") as f:
        f.write("event 100\nevent 101\n")
    src = source_for(path)
    assert prefix_sha256(src, first[-1].end) == digest
    [new] = read_source(src, start=first[-1].end)
    assert (new.text, new.line_start, new.line_end) == ("event 100\nevent 101\n", 101, 102)
    path.write_text("rewritten\n" + path.read_text()[10:])
    assert prefix_sha256(source_for(path), first[-1].end) != digest


def test_resume_past_the_end_is_an_error(tmp_path):
    path = tmp_path / "short.log"
    path.write_text("one\n")
    with pytest.raises(InputError, match=r"short\.log: resume offset 99 is past the end"):
        list(read_source(source_for(path), start=99))


def test_invalid_utf8_is_replaced_and_warned_once(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café crème\n".encode("latin-1") * 5000)
    warnings = []
    pieces = pieces_of(path, max_chars=1000, warn=warnings.append)
    assert warnings == [f"{path}: not valid UTF-8; decoded with replacement"]
    assert pieces[0].text.startswith("caf\ufffd cr\ufffdme\n")
    assert all(len(p.text) <= 1000 for p in pieces)
    assert "".join(p.text for p in pieces) == "caf\ufffd cr\ufffdme\n" * 5000


def test_bom_is_dropped_and_crlf_kept(tmp_path):
    path = tmp_path / "win.txt"
    path.write_bytes(b"\xef\xbb\xbfone\r\ntwo\r\n")
    [p] = pieces_of(path)
    assert (p.text, p.line_start, p.line_end, p.end) == ("one\r\ntwo\r\n", 1, 2, 13)


def test_gzip_log_offsets_are_in_the_decompressed_stream(tmp_path, shared_data):
    data = (shared_data / "logs" / "Linux" / "Linux_2k.log").read_bytes()
    path = tmp_path / "Linux.log.1.gz"
    path.write_bytes(gzip.compress(data))
    src = source_for(path)
    assert src.kind == "gzip"
    pieces = list(read_source(src, max_chars=2000))
    assert "".join(p.text for p in pieces).encode() == data
    assert pieces[-1].end == len(data) and pieces[-1].line_end == 2000
    assert list(read_source(src, start=pieces[3].end, max_chars=2000)) == pieces[4:]
    assert prefix_sha256(src, 5000) == hashlib.sha256(data[:5000]).hexdigest()
    assert count_estimate(src) == (len(data), None)


def test_damaged_gzip_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "cut.log.gz"
    lines = b"".join(b"%d %s\n" % (i, hashlib.sha256(b"%d" % i).hexdigest().encode()) for i in range(2000))
    path.write_bytes(gzip.compress(lines)[:20_000])
    with pytest.raises(InputError, match=r"cut\.log\.gz: gzip stream is damaged"):
        list(read_source(source_for(path)))


def test_text_estimate_is_the_file_size(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("hello\n")
    assert count_estimate(source_for(path)) == (6, None)


def fake_stdin(monkeypatch, data: bytes):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_stdin_is_read_in_pieces(monkeypatch):
    data = "".join(f"piped {i}\n" for i in range(3000)).encode()
    fake_stdin(monkeypatch, data)
    warnings = []
    pieces = list(iter_pieces("-", warn=warnings.append))
    assert "".join(p.text for p in pieces).encode() == data
    assert {p.path for p in pieces} == {"<stdin>"} and len(pieces) > 1
    assert pieces[-1].line_end == 3000 and warnings == []
    fake_stdin(monkeypatch, data)
    [src] = scan("-")
    assert list(read_source(src, start=pieces[0].end)) == pieces[1:]


def test_empty_stdin_is_an_error(monkeypatch):
    fake_stdin(monkeypatch, b"")
    with pytest.raises(InputError, match="<stdin>: no input on stdin"):
        list(iter_pieces("-"))


def test_folder_reads_every_file_in_order(tmp_path):
    (tmp_path / "b.log").write_text("second\n")
    (tmp_path / "a.log").write_text("first\n")
    (tmp_path / "c.log.gz").write_bytes(gzip.compress(b"third\n"))
    assert [(p.path, p.text) for p in iter_pieces(str(tmp_path))] == [
        ("a.log", "first\n"), ("b.log", "second\n"), ("c.log.gz", "third\n"),
    ]
