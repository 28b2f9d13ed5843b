"""Turn a path argument (file, folder or "-") into the ordered list of files to read."""
from __future__ import annotations

import os
import stat
from collections import defaultdict
from fnmatch import fnmatchcase
from typing import Sequence

from comet_cli.errors import fail

from .base import STDIN_PATH, SourceFile, Warn, classify, ignore_warning

# How many file names a "skipped" warning lists before it says "and N more".
MAX_NAMES_IN_WARNING = 10

# Why a file given directly cannot be read, by classify()'s reason.
_DIRECT_REASONS = {
    "binary": "binary file; only text, logs (.gz too), PDF and e-books can be read",
    "archive": "compressed archive; extract it and pass the folder instead",
    "corrupt gzip": "not a valid gzip file",
}
# Skip reasons in a folder that deserve a warning naming the files (the rest are expected).
_WARNED_SKIPS = ("binary", "archive", "corrupt gzip", "unreadable", "special")


def scan(
    path: str,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    warn: Warn | None = None,
) -> list[SourceFile]:
    """List the readable files under `path`: a file, a folder (recursive) or "-" for stdin.

    Folder entries come in stable order, sorted by their posix path relative to the folder, and
    are shown by that relative path. `include`/`exclude` are fnmatch globs matched against the
    relative path and the base name; an excluded folder is not descended into. They do not
    filter a file given directly. Hidden files and folders (".git", ".env") are skipped, as are
    empty files; binary files, archives and unreadable files are skipped with one warning per
    reason naming them. Raises InputError for a missing path, an unreadable, empty or binary
    file given directly, and a folder with nothing readable.
    """
    warn = warn or ignore_warning
    if path == "-":
        return [SourceFile(STDIN_PATH, None, "stdin", None)]
    if not os.path.exists(path):
        if os.path.lexists(path):
            raise fail(path, "broken symbolic link")
        raise fail(path, "no such file or directory")
    if os.path.isdir(path):
        return _scan_folder(path, include, exclude, warn)
    return [_scan_file(path)]


def _scan_file(path: str) -> SourceFile:
    abspath = os.path.abspath(path)
    try:
        st = os.stat(abspath)
        if not stat.S_ISREG(st.st_mode):
            raise fail(path, "not a regular file; to read a pipe, send it to stdin and pass '-'")
        if st.st_size == 0:
            raise fail(path, "file is empty")
        kind, reason = classify(abspath)
    except PermissionError:
        raise fail(path, "permission denied") from None
    except OSError as e:
        raise fail(path, e.strerror or str(e)) from None
    if kind is None:
        raise fail(path, _DIRECT_REASONS[reason])
    return SourceFile(path, abspath, kind, st.st_size)


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    base = rel.rsplit("/", 1)[-1]
    return any(fnmatchcase(rel, p) or fnmatchcase(base, p) for p in patterns)


def _scan_folder(root: str, include, exclude, warn: Warn) -> list[SourceFile]:
    found: list[SourceFile] = []
    skipped: dict[str, list[str]] = defaultdict(list)

    try:
        with os.scandir(root):
            pass
    except PermissionError:
        raise fail(root, "permission denied") from None
    except OSError as e:
        raise fail(root, e.strerror or str(e)) from None

    def on_walk_error(e: OSError) -> None:
        # A subfolder that cannot be listed is skipped like an unreadable file.
        skipped["unreadable"].append(_relpath(e.filename, root) + "/")

    for dirpath, dirnames, filenames in os.walk(root, onerror=on_walk_error):
        rel_dir = _relpath(dirpath, root)
        dirnames[:] = [
            d for d in dirnames
            if not d.startswith(".") and not (exclude and _matches(_join(rel_dir, d), exclude))
        ]
        for name in filenames:
            if name.startswith("."):
                continue
            rel = _join(rel_dir, name)
            if (include and not _matches(rel, include)) or (exclude and _matches(rel, exclude)):
                skipped["excluded"].append(rel)
                continue
            entry, reason = _folder_entry(rel, os.path.abspath(os.path.join(dirpath, name)))
            if entry is None:
                skipped[reason].append(rel)
            else:
                found.append(entry)

    for reason in _WARNED_SKIPS:
        names = sorted(skipped.get(reason, ()))
        if names:
            shown = ", ".join(names[:MAX_NAMES_IN_WARNING])
            more = len(names) - MAX_NAMES_IN_WARNING
            tail = f" and {more} more" if more > 0 else ""
            warn(f"{root}: skipped {len(names)} {reason} file(s): {shown}{tail}")
    if not found:
        raise fail(root, f"no readable files ({_skip_summary(skipped)})")
    found.sort(key=lambda s: s.path)
    return found


def _folder_entry(rel: str, abspath: str) -> tuple[SourceFile | None, str | None]:
    """A SourceFile for a file inside a folder, or (None, why it was skipped)."""
    try:
        st = os.stat(abspath)
        if not stat.S_ISREG(st.st_mode):
            return None, "special"
        if st.st_size == 0:
            return None, "empty"
        kind, reason = classify(abspath)
    except OSError:
        return None, "unreadable"
    if kind is None:
        return None, reason
    return SourceFile(rel, abspath, kind, st.st_size), None


def _skip_summary(skipped: dict[str, list[str]]) -> str:
    total = sum(len(v) for v in skipped.values())
    if total == 0:
        return "the folder is empty or holds only hidden files"
    parts = [f"{len(v)} {k}" for k, v in sorted(skipped.items())]
    return f"{total} skipped: " + ", ".join(parts)


def _relpath(p: str, root: str) -> str:
    rel = os.path.relpath(p, root)
    return "" if rel == "." else rel.replace(os.sep, "/")


def _join(rel_dir: str, name: str) -> str:
    return f"{rel_dir}/{name}" if rel_dir else name
