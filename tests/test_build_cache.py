"""The Verilator build cache's size limit (``octet.sim.build_cache``), on fake cache folders.

Reference: which builds a least-recently-used policy must remove, worked out by hand for each
case (sizes in bytes, last uses as marker mtimes).
"""

import fcntl
import os

import pytest

from octet.sim.build_cache import MARKER, cache_limit_bytes, mark_used, prune

NOW = 1_000_000.0
HOUR = 3600.0


def fake_build(root, name, size, used=None):
    """A build folder with ``size`` bytes of content, finished (marker) if ``used`` is set."""
    path = root / name
    path.mkdir()
    (path / "model.so").write_bytes(b"x" * size)
    (root / f"{name}.lock").write_text("")
    if used is not None:
        (path / MARKER).write_text("ok\n")
        os.utime(path / MARKER, (used, used))
    return path


def test_removes_least_recently_used_until_it_fits(tmp_path):
    a = fake_build(tmp_path, "a", 1000, used=NOW - 5 * HOUR)
    b = fake_build(tmp_path, "b", 1000, used=NOW - 3 * HOUR)
    c = fake_build(tmp_path, "c", 1000, used=NOW - 4 * HOUR)
    d = fake_build(tmp_path, "d", 1000, used=NOW - 2 * HOUR)
    removed = prune(tmp_path, 2500, now=NOW)
    # 4000 bytes, limit 2500: the two least recently used (a, then c) go.
    assert [p.name for p, _ in removed] == ["a", "c"]
    assert not a.exists() and not c.exists() and b.exists() and d.exists()
    assert not (tmp_path / "a.lock").exists()


def test_recent_kept_and_unfinished_builds_stay(tmp_path):
    old = fake_build(tmp_path, "old", 1000, used=NOW - 5 * HOUR)
    recent = fake_build(tmp_path, "recent", 1000, used=NOW - 60)      # a parallel run's
    new = fake_build(tmp_path, "new", 1000, used=NOW - 10 * HOUR)     # just built (keep)
    partial = fake_build(tmp_path, "partial", 1000)                   # no marker: building
    removed = prune(tmp_path, 100, keep=[new], now=NOW)
    assert [p.name for p, _ in removed] == ["old"]
    assert recent.exists() and new.exists() and partial.exists() and not old.exists()


def test_locked_build_is_skipped(tmp_path):
    busy = fake_build(tmp_path, "busy", 1000, used=NOW - 9 * HOUR)
    fake_build(tmp_path, "idle", 1000, used=NOW - 8 * HOUR)
    with open(tmp_path / "busy.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        removed = prune(tmp_path, 1500, now=NOW)
    assert [p.name for p, _ in removed] == ["idle"]
    assert busy.exists()


def test_under_the_limit_or_no_limit_removes_nothing(tmp_path):
    fake_build(tmp_path, "a", 1000, used=NOW - 9 * HOUR)
    assert prune(tmp_path, 5000, now=NOW) == []
    assert prune(tmp_path, 0, now=NOW) == []
    assert prune(tmp_path / "missing", 10, now=NOW) == []


def test_mark_used_refreshes_the_last_use(tmp_path):
    build = fake_build(tmp_path, "a", 10, used=NOW - 9 * HOUR)
    mark_used(build)
    assert (build / MARKER).stat().st_mtime > NOW
    mark_used(tmp_path / "gone")          # a removed build is not an error


def test_limit_from_the_environment(monkeypatch):
    monkeypatch.delenv("OCTET_CACHE_MAX_GB", raising=False)
    assert cache_limit_bytes() == 20 * 10**9
    monkeypatch.setenv("OCTET_CACHE_MAX_GB", "0.5")
    assert cache_limit_bytes() == 5 * 10**8
    monkeypatch.setenv("OCTET_CACHE_MAX_GB", "0")
    assert cache_limit_bytes() == 0
    for bad in ("-1", "lots", "nan"):
        monkeypatch.setenv("OCTET_CACHE_MAX_GB", bad)
        with pytest.raises(ValueError, match=f"OCTET_CACHE_MAX_GB must be a non-negative "
                                             f"number of GB, not '{bad}'"):
            cache_limit_bytes()


def test_bad_limit_is_refused(tmp_path):
    with pytest.raises(ValueError, match="cache limit must be a non-negative number of bytes"):
        prune(tmp_path, -1)
