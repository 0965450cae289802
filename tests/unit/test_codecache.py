"""CodeCache: each key is fetched and extracted once, atomically, under concurrency; the
cache stays within its bound by evicting the least recently used entries no run holds."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from taskfn.runtime import codecache
from taskfn.runtime.codecache import CodeCache, dir_name
from taskfn.runtime.packaging import CodeError, zip_from_source

SOURCE = "def handler(event, context):\n    return 'v1'\n"


def contents(root: Path) -> list[str]:
    """Everything the cache keeps: entries, temp dirs and (under .locks) lock files."""
    top = [p.name for p in root.iterdir() if p.name != ".locks"]
    return sorted(top + [f".locks/{p.name}" for p in (root / ".locks").iterdir()])


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
    name = results[0].name
    assert contents(tmp_path / "cache") == [f".locks/{name}", name]


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
    assert contents(tmp_path / "cache") == []
    path = cache.get("build-1", lambda: zip_from_source(SOURCE))
    assert (path / "main.py").exists()


def test_bad_code_raises_and_leaves_nothing(tmp_path):
    cache = CodeCache(tmp_path / "cache")
    with pytest.raises(CodeError):
        cache.get("build-1", lambda: b"not a zip")
    with pytest.raises(CodeError, match="does not define handler"):
        cache.get("build-1", lambda: zip_from_source("x = 1\n"))
    assert contents(tmp_path / "cache") == []


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
    assert contents(tmp_path / "cache") == []
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


# --- the bound: least recently used entries no run holds are evicted --------------------


def source_of(key: str) -> str:
    """A build of about 100 KB, different for each key."""
    return f"def handler(event, context):\n    return {key!r}\n# {'x' * 100_000}\n"


class Builds:
    """Fetches for any key, counting each key's fetches."""

    def __init__(self):
        self.fetched: dict[str, int] = {}

    def fetch(self, key: str):
        def fetch() -> bytes:
            self.fetched[key] = self.fetched.get(key, 0) + 1
            return zip_from_source(source_of(key))
        return fetch


def room_for(builds: int, tmp_path: Path) -> int:
    """A bound that holds `builds` entries like source_of's, and not one more."""
    probe = CodeCache(tmp_path / "probe")
    size = codecache._disk_bytes(probe.get("probe", Builds().fetch("probe")))
    return int((builds + 0.5) * size)


@pytest.mark.parametrize("verify", [False, True])
def test_filling_past_the_bound_evicts_the_least_recently_used_entry(tmp_path, verify):
    cache = CodeCache(tmp_path / "cache", verify=verify, max_bytes=room_for(2, tmp_path))
    builds = Builds()
    a = cache.get("a", builds.fetch("a"))
    b = cache.get("b", builds.fetch("b"))
    assert cache.get("a", builds.fetch("a")) == a  # a is now used more recently than b
    c = cache.get("c", builds.fetch("c"))
    assert not b.exists() and a.is_dir() and c.is_dir()
    assert builds.fetched == {"a": 1, "b": 1, "c": 1}
    assert contents(tmp_path / "cache") == sorted(
        [a.name, c.name, f".locks/{a.name}", f".locks/{c.name}"])

    again = cache.get("b", builds.fetch("b"))  # extracted again, whole; a is now the oldest
    assert again == b and builds.fetched["b"] == 2
    assert (again / "main.py").read_text() == source_of("b")
    assert sorted(os.listdir(again)) == ["main.py"]
    assert not a.exists() and c.is_dir()


def test_an_entry_in_use_is_not_evicted(tmp_path):
    cache = CodeCache(tmp_path / "cache", max_bytes=room_for(2, tmp_path))
    builds = Builds()
    with cache.use("a", builds.fetch("a")) as a:  # the oldest, but a run is using it
        b = cache.get("b", builds.fetch("b"))
        c = cache.get("c", builds.fetch("c"))
        assert (a / "main.py").read_text() == source_of("a")
        assert not b.exists() and c.is_dir()
        d = cache.get("d", builds.fetch("d"))  # over the bound: only `a` is held, it stays
        assert (a / "main.py").read_text() == source_of("a")
        assert not c.exists() and d.is_dir()
    cache.get("e", builds.fetch("e"))  # no longer held: the oldest goes
    assert not a.exists() and d.is_dir()
    assert builds.fetched == {"a": 1, "b": 1, "c": 1, "d": 1, "e": 1}


HOLDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from taskfn.runtime.codecache import CodeCache
    from taskfn.runtime.packaging import zip_from_source

    cache = CodeCache(Path(sys.argv[1]))
    with cache.use("a", lambda: zip_from_source(sys.argv[2])) as entry:
        print(entry, flush=True)
        sys.stdin.readline()  # held until the test says
""")


def test_an_entry_another_process_is_using_is_not_evicted(tmp_path):
    root = tmp_path / "cache"
    cache = CodeCache(root, max_bytes=room_for(1, tmp_path))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(root), source_of("a")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        a = Path(holder.stdout.readline().strip())
        assert a.is_dir()
        builds = Builds()
        b = cache.get("b", builds.fetch("b"))  # one entry fits: `a` should go, but is held
        assert a.is_dir() and (a / "main.py").read_text() == source_of("a")
        holder.communicate("done\n", timeout=30)
        assert holder.returncode == 0
        cache.get("c", builds.fetch("c"))
        assert not a.exists() and not b.exists()
    finally:
        holder.kill()
        holder.wait()


def test_the_default_bound_is_the_setting_s_default():
    from taskfn.settings import Settings

    assert Settings().code_cache_max_bytes == codecache.DEFAULT_MAX_BYTES


def test_entries_an_earlier_process_left_count_and_go_first(tmp_path):
    root = tmp_path / "cache"
    builds = Builds()
    earlier = CodeCache(root)
    old = [earlier.get(key, builds.fetch(key)) for key in ("a", "b")]
    cache = CodeCache(root, max_bytes=room_for(2, tmp_path))
    c = cache.get("c", builds.fetch("c"))
    assert not old[0].exists() and old[1].is_dir() and c.is_dir()
