"""scan(): what gets read from a file, a folder or stdin, in which order, and what is refused."""
import gzip
import os

import pytest

from comet_cli.errors import InputError
from comet_cli.readers import SourceFile, scan


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "docs"
    write(root / "b.log", "b\n")
    write(root / "a.txt", "a\n")
    write(root / "a" / "z.md", "z\n")
    write(root / "sub" / "deep" / "c.log", "c\n")
    write(root / "sub" / "app.log.1.gz", gzip.compress(b"rotated\n"))
    write(root / ".git" / "config", "[core]\n")
    write(root / ".hidden.txt", "secret\n")
    write(root / "node_modules" / "x.txt", "x\n")
    return root


def test_folder_order_is_sorted_relative_posix_paths(tree):
    found = scan(str(tree))
    assert [s.path for s in found] == [
        "a.txt", "a/z.md", "b.log", "node_modules/x.txt", "sub/app.log.1.gz", "sub/deep/c.log",
    ]
    assert [s.kind for s in found] == ["text", "text", "text", "text", "gzip", "text"]
    assert found[0] == SourceFile("a.txt", str(tree / "a.txt"), "text", 2)


def test_include_and_exclude_match_relative_path_or_basename(tree):
    logs = scan(str(tree), include=["*.log", "*.gz"])
    assert [s.path for s in logs] == ["b.log", "sub/app.log.1.gz", "sub/deep/c.log"]
    # An excluded folder is pruned; a path glob excludes below a folder.
    rest = scan(str(tree), exclude=["node_modules", "sub/deep/*"])
    assert [s.path for s in rest] == ["a.txt", "a/z.md", "b.log", "sub/app.log.1.gz"]
    assert [s.path for s in scan(str(tree), include=["a/*"])] == ["a/z.md"]


def test_filters_do_not_apply_to_a_file_given_directly(tree):
    assert [s.path for s in scan(str(tree / "a.txt"), include=["*.log"])] == [str(tree / "a.txt")]


def test_binary_files_in_a_folder_are_skipped_with_one_warning_naming_them(tmp_path):
    write(tmp_path / "notes.txt", "hello\n")
    write(tmp_path / "logo.png", b"\x89PNG\r\n\x1a\n" + b"x" * 100)
    write(tmp_path / "blob.dat", b"abc\0def")
    write(tmp_path / "bundle.tar.gz", gzip.compress(b"tar\0\0\0"))
    write(tmp_path / "dump.gz", gzip.compress(b"\0\1\2\3"))
    write(tmp_path / "empty.txt", b"")
    warnings = []
    found = scan(str(tmp_path), warn=warnings.append)
    assert [s.path for s in found] == ["notes.txt"]
    assert warnings == [
        f"{tmp_path}: skipped 3 binary file(s): blob.dat, dump.gz, logo.png",
        f"{tmp_path}: skipped 1 archive file(s): bundle.tar.gz",
    ]


def test_kind_is_sniffed_from_content_without_an_extension(tmp_path):
    write(tmp_path / "rotated", gzip.compress(b"line\n"))
    pdf = (tmp_path / "report")
    pdf.write_bytes(b"%PDF-1.4\n" + b"x" * 50)
    assert {s.path: s.kind for s in scan(str(tmp_path))} == {"report": "pdf", "rotated": "gzip"}


def test_warning_lists_at_most_ten_names(tmp_path):
    write(tmp_path / "ok.txt", "ok\n")
    for i in range(12):
        write(tmp_path / f"img{i:02}.jpg", b"\xff\xd8\xff")
    warnings = []
    scan(str(tmp_path), warn=warnings.append)
    assert warnings[0].endswith("img09.jpg and 2 more")
    assert "skipped 12 binary file(s)" in warnings[0]


def test_binary_file_given_directly_is_an_error(tmp_path):
    blob = write(tmp_path / "model.bin", b"\0\1\2")
    with pytest.raises(InputError, match=r"model\.bin: binary file"):
        scan(str(blob))


def test_missing_path_is_an_error_naming_it(tmp_path):
    with pytest.raises(InputError) as e:
        scan(str(tmp_path / "nope.txt"))
    assert str(e.value) == f"{tmp_path / 'nope.txt'}: no such file or directory"


def test_empty_file_given_directly_is_an_error(tmp_path):
    empty = write(tmp_path / "empty.log", b"")
    with pytest.raises(InputError, match=r"empty\.log: file is empty"):
        scan(str(empty))


def test_folder_with_nothing_readable_says_what_was_skipped(tmp_path):
    write(tmp_path / "a.png", b"\x89PNG")
    write(tmp_path / "b.txt", b"")
    write(tmp_path / "c.txt", "excluded\n")
    with pytest.raises(InputError) as e:
        scan(str(tmp_path), exclude=["c.*"])
    assert str(e.value) == f"{tmp_path}: no readable files (3 skipped: 1 binary, 1 empty, 1 excluded)"


def test_empty_folder_is_an_error(tmp_path):
    write(tmp_path / ".git" / "HEAD", "ref\n")
    with pytest.raises(InputError, match="no readable files"):
        scan(str(tmp_path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied(tmp_path):
    locked = write(tmp_path / "locked.txt", "secret\n")
    locked.chmod(0)
    try:
        with pytest.raises(InputError, match=r"locked\.txt: permission denied"):
            scan(str(locked))
        write(tmp_path / "open.txt", "fine\n")
        warnings = []
        assert [s.path for s in scan(str(tmp_path), warn=warnings.append)] == ["open.txt"]
        assert "unreadable file(s): locked.txt" in warnings[0]
    finally:
        locked.chmod(0o600)


def test_stdin_is_a_source_of_its_own():
    assert scan("-") == [SourceFile("<stdin>", None, "stdin", None)]


def test_real_log_folder(shared_data):
    logs = shared_data / "logs"
    found = scan(str(logs), include=["*_2k.log"])
    assert len(found) >= 10
    assert all(s.kind == "text" and s.path.endswith("_2k.log") for s in found)
    assert [s.path for s in found] == sorted(s.path for s in found)
    assert "HDFS/HDFS_2k.log" in [s.path for s in found]
