"""Size limit of the Verilator build cache: least recently used builds go first.

Every distinct design (each RTL change, each configuration) is a new cached build of about
50-200 MB, and nothing else ever removes one: a few days of RTL work had filled 59 GB and the
disk. After each new build, :func:`prune` removes the least recently used finished builds until
the cache fits its limit (``$OCTET_CACHE_MAX_GB``, default 20; 0 disables the limit). A build's
last use is its marker file's modification time, refreshed on every cache hit
(:func:`mark_used`). Builds used in the last 30 minutes stay, since a parallel run may be
simulating them, and so does any build whose lock another process holds (being built).

Tested by ``tests/test_build_cache.py``.
"""

import contextlib
import fcntl
import os
import shutil
import time
from pathlib import Path

__all__ = ["DEFAULT_MAX_GB", "MARKER", "cache_limit_bytes", "mark_used", "prune"]

#: Default limit of the cache, in GB.
DEFAULT_MAX_GB = 20
#: File that marks a finished build (its mtime is the build's last use).
MARKER = ".octet-built"
#: Builds used more recently than this are never removed (seconds).
MIN_IDLE_SECONDS = 30 * 60


def cache_limit_bytes():
    """The limit from ``$OCTET_CACHE_MAX_GB`` (a non-negative number; 0: no limit)."""
    text = os.environ.get("OCTET_CACHE_MAX_GB", str(DEFAULT_MAX_GB))
    try:
        gb = float(text)
    except ValueError:
        gb = -1
    if not gb >= 0:
        raise ValueError(f"OCTET_CACHE_MAX_GB must be a non-negative number of GB, not {text!r}")
    return int(gb * 1e9)


def mark_used(build_dir):
    """Record that ``build_dir`` was just used (its marker's mtime)."""
    with contextlib.suppress(OSError):   # removed meanwhile, or read-only: not worth failing
        os.utime(Path(build_dir) / MARKER)


def _size(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _unlocked(lock_path):
    """True if no process holds ``lock_path`` (a build in progress holds its lock)."""
    try:
        with open(lock_path, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False
            fcntl.flock(handle, fcntl.LOCK_UN)
            return True
    except OSError:
        return False


def prune(root, max_bytes, keep=(), now=None, min_idle=MIN_IDLE_SECONDS):
    """Remove least recently used finished builds from ``root`` until it fits ``max_bytes``.

    Parameters
    ----------
    root : path
        The cache folder: one sub-folder per build, with a ``MARKER`` file once finished and a
        ``<folder>.lock`` file beside it.
    max_bytes : int
        The limit; 0 means none (nothing is removed).
    keep : sequence of path
        Builds never removed (e.g. the one just built).
    now : float, optional
        The current time (``time.time()``); for tests.
    min_idle : float
        Builds used within this many seconds are never removed.

    Returns
    -------
    list of (Path, int)
        The removed builds and their sizes in bytes, oldest first.
    """
    if not isinstance(max_bytes, int) or max_bytes < 0:
        raise ValueError(f"cache limit must be a non-negative number of bytes, not {max_bytes!r}")
    root = Path(root)
    if max_bytes == 0 or not root.is_dir():
        return []
    now = time.time() if now is None else now
    kept = {Path(k).resolve() for k in keep}
    builds = []
    total = 0
    for entry in root.iterdir():
        if not entry.is_dir():
            continue
        size = _size(entry)
        total += size
        marker = entry / MARKER
        if marker.exists() and entry.resolve() not in kept:
            builds.append((marker.stat().st_mtime, entry, size))
    removed = []
    for used, entry, size in sorted(builds):
        if total <= max_bytes:
            break
        if now - used < min_idle:
            break                 # this one and all later ones are in recent use
        lock = entry.parent / f"{entry.name}.lock"
        if not _unlocked(lock):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        lock.unlink(missing_ok=True)
        total -= size
        removed.append((entry, size))
    return removed
