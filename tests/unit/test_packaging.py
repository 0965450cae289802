"""Uploaded code checks: every reject rule, zip bombs, hostile bytes, and safe extraction."""

from __future__ import annotations

import io
import random
import stat
import struct
import warnings
import zipfile

import pytest

from taskfn.runtime import packaging
from taskfn.runtime.packaging import (
    MAX_ENTRIES,
    MAX_UNZIPPED_BYTES,
    MAX_ZIP_BYTES,
    CodeCheck,
    CodeError,
    check_zip,
    safe_extract,
    zip_from_source,
)

GOOD = "def handler(event, context):\n    return 'ok'\n"


def make_zip(*entries: tuple[str, bytes | str], attrs: dict[str, int] | None = None) -> bytes:
    """A zip with the given (name, content) entries; names ending in / are folders."""
    attrs = attrs or {}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are written on purpose
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, content in entries:
                info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.create_system = 3
                default = stat.S_IFDIR | 0o755 if name.endswith("/") else stat.S_IFREG | 0o644
                info.external_attr = attrs.get(name, default) << 16
                if isinstance(content, str):
                    content = content.encode("utf-8")
                archive.writestr(info, content)
    return buffer.getvalue()


def patch_headers(data: bytes, **fields: int) -> bytes:
    """Overwrite fields of every local and central header (flags, usize) to forge archives."""
    out = bytearray(data)
    local = {"flags": (6, "<H"), "usize": (22, "<I")}
    central = {"flags": (8, "<H"), "usize": (24, "<I")}
    for signature, layout in ((b"PK\x03\x04", local), (b"PK\x01\x02", central)):
        start = 0
        while (at := out.find(signature, start)) != -1:
            for name, value in fields.items():
                offset, fmt = layout[name]
                if name == "flags":
                    value |= struct.unpack_from(fmt, out, at + offset)[0]
                struct.pack_into(fmt, out, at + offset, value)
            start = at + 4
    return bytes(out)


def rejected(data: bytes) -> str:
    result = check_zip(data)
    assert isinstance(result, CodeCheck)
    assert result.ok is False, result.log
    assert result.log, "a rejection must say why"
    return result.log[-1]


# --- accepted archives ---------------------------------------------------------------------


def test_good_archive_logs_what_it_found():
    data = make_zip(("main.py", GOOD), ("lib/", b""), ("lib/util.py", "X = 1\n"),
                    ("data.txt", b"abc"))
    result = check_zip(data)
    assert result.ok, result.log
    assert result.files == 3
    unzipped = len(GOOD) + len("X = 1\n") + 3
    assert f"archive: 3 files, {unzipped} bytes unzipped" in result.log
    assert result.log[-1] == "main.py compiles and defines handler"


@pytest.mark.parametrize(
    "source",
    [
        "def handler(event, context):\n    return 1\n",
        "handler = lambda event, context: 1\n",
        "from os.path import join as handler\n",
        "from mylib import handler\n",
        "handler: object = print\n",
        "a, handler = 1, print\n",
        "try:\n    from fast import handler\nexcept ImportError:\n"
        "    def handler(event, context):\n        return 1\n",
        "if True:\n    def handler(event, context):\n        return 1\n",
        "\ufeffdef handler(event, context):\n    return 1\n",  # a UTF-8 BOM is still UTF-8
    ],
)
def test_handler_forms_accepted(source):
    result = check_zip(zip_from_source(source))
    assert result.ok, result.log


def test_zip_from_source_is_deterministic_and_valid():
    first = zip_from_source(GOOD)
    assert first == zip_from_source(GOOD)
    assert first != zip_from_source(GOOD + "\n")
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert archive.namelist() == ["main.py"]
        assert archive.read("main.py").decode() == GOOD
    assert check_zip(first).ok


# --- rejected archives -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "the upload is empty"),
        (b"this is not a zip", "not a zip archive"),
        (b"PK\x03\x04" + b"\x00" * 100, "not a zip archive"),
    ],
)
def test_not_a_zip(data, reason):
    assert rejected(data).startswith(reason)


def test_too_big_upload():
    data = random.Random(1).randbytes(MAX_ZIP_BYTES + 1)
    assert rejected(data) == (
        f"archive is {MAX_ZIP_BYTES + 1} bytes; the limit is {MAX_ZIP_BYTES} bytes"
    )


def test_too_many_entries():
    entries = [("main.py", GOOD)] + [(f"f{i}.txt", b"") for i in range(MAX_ENTRIES)]
    assert rejected(make_zip(*entries)) == (
        f"too many entries: {MAX_ENTRIES + 1}; the limit is {MAX_ENTRIES}"
    )


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """Zeros past the unzipped limit deflate to about a thousandth of it."""
    data = make_zip(("main.py", GOOD), ("zeros.bin", bytes(MAX_UNZIPPED_BYTES + 10 * 2**20)))
    assert len(data) < 400 * 1024
    return data


def test_zip_bomb_rejected_by_declared_size(bomb, tmp_path):
    assert rejected(bomb).startswith("archive unzips to ")
    with pytest.raises(CodeError, match="archive unzips to"):
        safe_extract(bomb, tmp_path / "out")
    assert not (tmp_path / "out" / "zeros.bin").exists()


def test_zip_bomb_with_lying_sizes_rejected(bomb, tmp_path):
    """Declared sizes are small; the real data is past the limit. Real bytes count."""
    liar = patch_headers(bomb, usize=1000)
    reason = rejected(liar)
    assert "corrupt" in reason or "unzips to" in reason
    with pytest.raises(CodeError):
        safe_extract(liar, tmp_path / "out")


@pytest.mark.parametrize(
    "name",
    [
        "../x.py",
        "a/../../x.py",
        "/etc/x.py",
        "..\\x.py",
        "a\\b.py",
        "C:/x.py",
        "c:x.py",
        "./x.py",
        "a//b.py",
        "a/./b.py",
        "bad\nname.py",
        "x.py\x00.txt",
    ],
)
def test_unsafe_paths(name, tmp_path):
    # zipfile itself cuts names at NUL when writing, so that one is forged in the raw bytes.
    data = make_zip(("main.py", GOOD), (name.replace("\x00", "#"), b"x"))
    data = data.replace(name.replace("\x00", "#").encode(), name.encode())
    assert rejected(data).startswith("unsafe path ")
    with pytest.raises(CodeError, match="unsafe path"):
        safe_extract(data, tmp_path / "out")
    assert not (tmp_path / "x.py").exists()


def test_unsafe_path_message_quotes_the_name():
    assert rejected(make_zip(("main.py", GOOD), ("../x.py", b"x"))) == "unsafe path '../x.py'"


def test_overlong_path():
    assert rejected(make_zip(("main.py", GOOD), ("a" * 300 + ".py", b"x"))).startswith(
        "path too long"
    )


def test_symlink_rejected(tmp_path):
    data = make_zip(("main.py", GOOD), ("link", "/etc/passwd"),
                    attrs={"link": stat.S_IFLNK | 0o777})
    assert rejected(data) == "symlink not allowed: 'link'"
    with pytest.raises(CodeError, match="symlink"):
        safe_extract(data, tmp_path / "out")


def test_special_file_rejected():
    data = make_zip(("main.py", GOOD), ("fifo", b""), attrs={"fifo": stat.S_IFIFO | 0o644})
    assert rejected(data) == "special file not allowed: 'fifo'"


def test_duplicate_names_rejected():
    assert rejected(make_zip(("main.py", GOOD), ("main.py", GOOD))) == "duplicate entry 'main.py'"
    assert rejected(make_zip(("main.py", GOOD), ("a", b""), ("a/", b""))) == "duplicate entry 'a/'"


def test_file_and_folder_with_same_name_rejected():
    assert rejected(make_zip(("main.py", GOOD), ("a", b""), ("a/b.py", b""))) == (
        "'a' is both a file and a folder"
    )


def test_encrypted_entry_rejected():
    data = patch_headers(make_zip(("main.py", GOOD)), flags=0x1)
    assert rejected(data) == "encrypted entry not allowed: 'main.py'"


def test_corrupt_entry_rejected():
    data = bytearray(make_zip(("main.py", GOOD), ("big.txt", "hello world " * 500)))
    at = data.find(b"PK\x03\x04", 10) + 30 + len("big.txt") + 5
    data[at] ^= 0xFF  # damage the compressed stream of big.txt
    assert rejected(bytes(data)).startswith("entry 'big.txt' is corrupt: ")


def test_main_py_missing():
    assert rejected(make_zip(("other.py", GOOD))) == "main.py not found at the top of the archive"


def test_main_py_in_a_folder_gets_a_hint():
    result = check_zip(make_zip(("src/main.py", GOOD)))
    assert not result.ok
    assert result.log[-1] == "main.py not found at the top of the archive"
    assert any("src/main.py" in line for line in result.log)


def test_main_py_as_folder_is_not_main_py():
    assert rejected(make_zip(("main.py/", b""), ("main.py/x.py", GOOD))) == (
        "main.py not found at the top of the archive"
    )


def test_main_py_not_utf8():
    data = make_zip(("main.py", b"# caf\xe9\n" + GOOD.encode()))
    assert rejected(data).startswith("main.py is not UTF-8")


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("x = 1\ny = 2\nif True print(1)\n", "main.py line 3: "),
        ("def handler(event, context):\n    pass\nreturn 5\n", "main.py line 3: "),
        ("x = 1\n\x00\n", "main.py"),
        ("(" * 5000 + ")" * 5000, "main.py"),
        ("x = " + "-" * 1_000_000 + "1\n", "main.py is too large or complex to compile"),
        ("x = " + "+".join(["1"] * 20_000) + "\n", "main.py does not compile: maximum recursion"),
    ],
)
def test_main_py_does_not_compile(source, reason):
    assert rejected(zip_from_source(source)).startswith(reason)


def test_big_main_py_is_checked_in_a_child_process(tmp_path):
    filler = "x = [1, 2, {'a': 'b'}]\n" * 4000  # about 100 kB: over the in-process limit
    assert len(filler) > packaging.MAX_INPROCESS_COMPILE_BYTES
    assert check_zip(zip_from_source(filler + GOOD)).log[-1] == (
        "main.py compiles and defines handler"
    )
    assert rejected(zip_from_source(filler + "if True print(1)\n")) == (
        "main.py line 4001: invalid syntax"
    )
    assert rejected(zip_from_source(filler)) == "main.py does not define handler"
    marker = tmp_path / "ran"
    assert check_zip(zip_from_source(f"open({str(marker)!r}, 'w').close()\n" + filler + GOOD)).ok
    assert not marker.exists()


def test_compile_bomb_is_contained(monkeypatch):
    """A few MB of source can need GBs to compile: the child hits its limit, not us."""
    monkeypatch.setattr(packaging, "COMPILE_MEMORY_MB", 150)
    bomb = zip_from_source("x = [1, 2, 3, {'a': 'b'}]\n" * 60_000 + GOOD)
    assert len(bomb) < 10_000
    assert rejected(bomb).startswith("main.py is too large or complex to compile")


def test_compile_check_has_a_wall_clock_limit(monkeypatch):
    monkeypatch.setattr(packaging, "COMPILE_TIMEOUT_S", 0.001)
    reason = rejected(zip_from_source("x = 1\n" * 20_000 + GOOD))
    assert reason.startswith("main.py is too large or complex to compile (took more than")


def test_main_py_is_compiled_not_executed(tmp_path):
    marker = tmp_path / "ran"
    source = f"open({str(marker)!r}, 'w').close()\n" + GOOD
    assert check_zip(zip_from_source(source)).ok
    assert not marker.exists()


@pytest.mark.parametrize(
    "source",
    [
        "def other(event, context):\n    return 1\n",
        "def setup():\n    handler = 1\n",
        "class Box:\n    def handler(self, event, context):\n        return 1\n",
        "handler == 1\n",
        "",
    ],
)
def test_handler_missing(source):
    assert rejected(zip_from_source(source)) == "main.py does not define handler"


@pytest.mark.parametrize(("source", "what"), [
    ("handler = 5\n", "int 5"), ("handler = 'main'\n", "str 'main'"),
    ("handler: int = None\n", "NoneType None"), ("handler = [f for f in ()]\n", "a list"),
    ("def handler(event, context):\n    return 1\nhandler = {}\n", "a dict"),
])
def test_handler_bound_to_a_value_no_call_could_use_is_rejected(source, what):
    reason = rejected(zip_from_source(source))
    assert reason.startswith(f"main.py binds handler to {what};"), reason


def test_async_handler_rejected_clearly():
    reason = rejected(zip_from_source("async def handler(event, context):\n    return 1\n"))
    assert "async" in reason
    assert reason.startswith("main.py defines handler with 'async def'")


# --- hostile bytes never raise -------------------------------------------------------------------


def test_random_bytes_never_raise():
    rng = random.Random(42)
    for length in [1, 2, 3, 4, 22, 30, 100, 1000, 65_536]:
        for _ in range(20):
            assert check_zip(rng.randbytes(length)).ok is False


def test_truncated_and_mutated_zips_never_raise():
    data = make_zip(("main.py", GOOD), ("lib/x.py", "X = 1\n"))
    for end in range(len(data)):
        assert check_zip(data[:end]).ok is False
    for at in range(len(data)):
        mutated = bytearray(data)
        mutated[at] ^= 0xFF
        assert isinstance(check_zip(bytes(mutated)), CodeCheck)
    rng = random.Random(7)
    for _ in range(300):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        assert isinstance(check_zip(bytes(mutated)), CodeCheck)


@pytest.mark.parametrize("value", [None, "main.py", 12, [b"PK"]])
def test_non_bytes_never_raise(value):
    result = check_zip(value)
    assert result.ok is False and result.log


def test_bytearray_and_memoryview_accepted():
    data = zip_from_source(GOOD)
    assert check_zip(bytearray(data)).ok
    assert check_zip(memoryview(data)).ok


# --- extraction ---------------------------------------------------------------------------------


def test_safe_extract_writes_the_tree(tmp_path):
    data = make_zip(
        ("main.py", GOOD),
        ("lib/", b""),
        ("lib/util.py", "X = 1\n"),
        ("bin/run.sh", "#!/bin/sh\n"),
        attrs={"bin/run.sh": stat.S_IFREG | 0o755},
    )
    dest = tmp_path / "out"
    safe_extract(data, dest)
    assert (dest / "main.py").read_text() == GOOD
    assert (dest / "lib" / "util.py").read_text() == "X = 1\n"
    assert (dest / "lib").is_dir()
    assert (dest / "main.py").stat().st_mode & 0o777 == 0o444
    assert (dest / "bin" / "run.sh").stat().st_mode & 0o111


def test_safe_extract_rejects_what_check_zip_rejects(tmp_path):
    for data in [b"", b"junk", make_zip(("x.py", GOOD)), zip_from_source("def f(): pass\n"),
                 zip_from_source("async def handler(e, c): pass\n")]:
        reason = check_zip(data).log[-1]
        with pytest.raises(CodeError) as caught:
            safe_extract(data, tmp_path / "out")
        assert str(caught.value) == reason
        assert isinstance(caught.value, ValueError)


def test_limits_are_the_contract():
    assert MAX_ZIP_BYTES == 50 * 1024 * 1024
    assert MAX_UNZIPPED_BYTES == 128 * 1024 * 1024
    assert MAX_ENTRIES == 2000
