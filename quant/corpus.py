"""The training and evaluation corpus: the Python standard library's own source code.

Every machine that runs Octet has a CPython standard library, so the corpus needs no download.
Files are the ``.py`` files under ``sysconfig.get_paths()["stdlib"]``, minus test suites,
installed third-party packages and machine-generated files (see :data:`EXCLUDED_DIRS` and
:data:`EXCLUDED_FILES`). Each file is assigned to a split by the SHA-256 of its path relative
to the stdlib folder, so a file's split depends only on its own name: a file added or removed
in another Python release moves no other file between splits, and held-out files are never
seen in training.

Each split is the concatenation, in sorted path order, of ``SEPARATOR`` + file bytes for each
of its files. The separator (a NUL byte, which never occurs in Python source) marks the start
of a file, so a generator can be prompted with it to begin a new file.

Tested by ``tests/test_quant_corpus.py`` (splits are disjoint, deterministic and non-empty).
"""

import hashlib
import os
import sysconfig
from pathlib import Path

import numpy as np

__all__ = ["SPLITS", "SEPARATOR", "EXCLUDED_DIRS", "EXCLUDED_FILES", "CorpusError",
           "stdlib_dir", "list_files", "split_of", "split_files", "load_split", "fixed_windows"]

SPLITS = ("train", "calibration", "heldout")

#: Marks the start of every file in a split.
SEPARATOR = b"\x00"

#: Directory names skipped at any depth: test suites (they contain deliberately odd bytes and
#: vary most between releases), installed packages, caches, and build configuration.
EXCLUDED_DIRS = frozenset({
    "test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__",
    "lib-dynload", "ensurepip",
})

#: File-name prefixes skipped: generated, machine-specific or data-only modules.
EXCLUDED_FILES = ("_sysconfigdata", "topics.py")

#: Of 1000 hash buckets, held-out takes [0, 40), calibration [40, 60), training the rest.
_HELDOUT_BUCKETS = 40
_CALIBRATION_BUCKETS = 20


class CorpusError(OSError):
    """The standard library source could not be found or read, or is too small."""


def stdlib_dir():
    path = Path(sysconfig.get_paths()["stdlib"])
    if not path.is_dir():
        raise CorpusError(f"the Python standard library folder {path} does not exist")
    return path


def _excluded_dir(name):
    return name in EXCLUDED_DIRS or name.startswith("config-")


def list_files(root=None):
    """Relative POSIX paths of the corpus's ``.py`` files under ``root``, sorted."""
    root = Path(root) if root is not None else stdlib_dir()
    files = []
    # os.walk with pruning: site-packages alone can hold far more files than the stdlib.
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not _excluded_dir(d)]
        rel_folder = Path(folder).relative_to(root)
        for name in names:
            if name.endswith(".py") and not name.startswith(EXCLUDED_FILES):
                files.append((rel_folder / name).as_posix())
    if not files:
        raise CorpusError(f"no Python source files found under {root}")
    return sorted(files)


def split_of(rel_path: str):
    """The split ("train", "calibration" or "heldout") of a file, from its relative path."""
    digest = hashlib.sha256(rel_path.encode("utf-8")).digest()
    bucket = int.from_bytes(digest[:8], "little") % 1000
    if bucket < _HELDOUT_BUCKETS:
        return "heldout"
    if bucket < _HELDOUT_BUCKETS + _CALIBRATION_BUCKETS:
        return "calibration"
    return "train"


def split_files(split, root=None):
    """Sorted relative paths of the files in ``split``."""
    if split not in SPLITS:
        raise ValueError(f"unknown corpus split {split!r}; choose one of {', '.join(SPLITS)}")
    return [f for f in list_files(root) if split_of(f) == split]


def load_split(split, root=None):
    """The bytes of ``split``: ``SEPARATOR + file`` for each of its files, in sorted order."""
    root = Path(root) if root is not None else stdlib_dir()
    parts = []
    for rel in split_files(split, root):
        try:
            parts.append(SEPARATOR + (root / rel).read_bytes())
        except OSError as exc:
            raise CorpusError(f"cannot read corpus file {root / rel}: {exc}") from None
    return b"".join(parts)


def fixed_windows(data: bytes, count, length):
    """``count`` windows of ``length`` + 1 bytes spread evenly over ``data``, as uint8 (count,
    length + 1): inputs are ``[:, :-1]``, next-byte targets ``[:, 1:]``."""
    need = length + 1
    if count < 1 or len(data) < count * need:
        raise CorpusError(f"{len(data)} bytes cannot hold {count} windows of {need} bytes")
    stride = (len(data) - need) // max(count - 1, 1)
    buf = np.frombuffer(data, dtype=np.uint8)
    return np.stack([buf[i * stride:i * stride + need] for i in range(count)])
