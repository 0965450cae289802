"""CodeCache: each key is fetched and extracted once, atomically, under concurrency."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from taskfn.runtime import codecache
from taskfn.runtime.codecache import CodeCache, dir_name
from taskfn.runtime.packaging import CodeError, zip_from_source

SOURCE = "def handler(event, context):\n    return 'v1'\n"


def counting_fetch(data: bytes, delay: float = 0.0):
    calls: list[int] = []
    lock = threading.Lock()

    def fetch() -> bytes:
        with lock:
            calls.append(1)
        time.sleep(delay)  # widen the race window
        return data

    return fetch, calls


def test_extracts_on_first_use_and_reuses(tmp_path):
    cache = CodeCache(tmp_path / "cache")
    fetch, calls = counting_fetch(zip_from_source(SOURCE))
    first = cache.get("build-1", fetch)
    assert (first / "main.py").read_text() == SOURCE
    assert first.is_absolute() and first.parent == (tmp_path / "cache").resolve()
    assert cache.get("build-1", fetch) == first
    assert len(calls) == 1


def test_concurrent_callers_extract_once(tmp_path):
    cache = CodeCache(tmp_path / "cache")
    fetch, calls = counting_fetch(zip_from_source(SOURCE), delay=0.2)
    results: list[Path] = []
    errors: list[BaseException] = []
    start = threading.Barrier(12)

    def worker() -> None:
        start.wait()
        try:
            results.append(cache.get("build-1", fetch))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not errors
    assert len(calls) == 1
    assert len(results) == 12 and len(set(results)) == 1
    assert (results[0] / "main.py").read_text() == SOURCE
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [results[0].name]


def test_different_keys_do_not_block_each_other(tmp_path):
    cache = CodeCache(tmp_path / "cache")
    slow, _ = counting_fetch(zip_from_source(SOURCE), delay=1.0)
    fast, _ = counting_fetch(zip_from_source(SOURCE.replace("v1", "v2")))
    thread = threading.Thread(target=cache.get, args=("slow", slow))
    thread.start()
    time.sleep(0.05)
    started = time.monotonic()
    other = cache.get("fast", fast)
    assert time.monotonic() - started < 0.9
    assert "v2" in (other / "main.py").read_text()
    thread.join(5)


def test_keys_become_safe_distinct_names(tmp_path):
    cache = CodeCache(tmp_path / "cache")
    data = zip_from_source(SOURCE)
    root = (tmp_path / "cache").resolve()
    paths = {key: cache.get(key, lambda: data) for key in
             ["../../etc", "a/b", "a_b", "", ".hidden", "fn-1#build-2", "é"]}
    assert len(set(paths.values())) == len(paths)
    for path in paths.values():
        assert path.parent == root
        assert not path.name.startswith(".")
    assert not (tmp_path / "etc").exists()


def test_dir_name():
    assert dir_name("fn-1.build-2").startswith("fn-1.build-2-")
    assert dir_name("a/b") != dir_name("a_b")
    assert dir_name("x" * 500) == dir_name("x" * 500)
    assert len(dir_name("x" * 500)) < 100
    assert "/" not in dir_name("../..") and not dir_name("../..").startswith(".")


def test_fetch_failure_caches_nothing(tmp_path):
    cache = CodeCache(tmp_path / "cache")

    def broken() -> bytes:
        raise OSError("s3 is down")

    with pytest.raises(OSError, match="s3 is down"):
        cache.get("build-1", broken)
    assert list((tmp_path / "cache").iterdir()) == []
    path = cache.get("build-1", lambda: zip_from_source(SOURCE))
    assert (path / "main.py").exists()


def test_bad_code_raises_and_leaves_nothing(tmp_path):
    cache = CodeCache(tmp_path / "cache")
    with pytest.raises(CodeError):
        cache.get("build-1", lambda: b"not a zip")
    with pytest.raises(CodeError, match="does not define handler"):
        cache.get("build-1", lambda: zip_from_source("x = 1\n"))
    assert list((tmp_path / "cache").iterdir()) == []


def test_crash_mid_extract_is_never_reused(tmp_path, monkeypatch):
    """A half-written extraction must not become the key's directory."""
    cache = CodeCache(tmp_path / "cache")

    def half_extract(data: bytes, dest: Path) -> None:
        dest.mkdir()
        (dest / "main.py").write_text("# half")
        raise KeyboardInterrupt  # as abrupt as it gets short of killing the process

    monkeypatch.setattr(codecache, "safe_extract", half_extract)
    with pytest.raises(KeyboardInterrupt):
        cache.get("build-1", lambda: zip_from_source(SOURCE))
    monkeypatch.undo()
    assert list((tmp_path / "cache").iterdir()) == []
    path = cache.get("build-1", lambda: zip_from_source(SOURCE))
    assert (path / "main.py").read_text() == SOURCE


def test_stale_temp_dirs_are_swept_fresh_ones_kept(tmp_path):
    root = tmp_path / "cache"
    stale = root / ".tmp-build-1-123-abcd"
    fresh = root / ".tmp-build-2-456-abcd"
    for path in (stale, fresh):
        path.mkdir(parents=True)
        (path / "main.py").write_text("# left by a crash")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    cache = CodeCache(root)
    assert not stale.exists() and fresh.exists()
    path = cache.get("build-1", lambda: zip_from_source(SOURCE))
    assert (path / "main.py").read_text() == SOURCE
