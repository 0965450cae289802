"""Check and unpack uploaded function code (a zip with main.py defining handler at its root).

Uploads are untrusted: every rule here exists so that a hostile or broken archive is rejected
with a clear one-line reason at upload time instead of failing (or escaping) at run time.
Nothing in an upload is ever executed here; main.py is only compiled.
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import stat
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

MAX_ZIP_BYTES = 50 * 1024 * 1024  # compressed (Lambda's own limit for a zip it deploys)
MAX_UNZIPPED_BYTES = 128 * 1024 * 1024  # sum of uncompressed sizes (zip bombs)
MAX_ENTRIES = 2000

# main.py bigger than this is compiled in a limited child process (see _analyze_in_child).
MAX_INPROCESS_COMPILE_BYTES = 64 * 1024
COMPILE_MEMORY_MB = 1024
COMPILE_CPU_S = 10
COMPILE_TIMEOUT_S = 15

MAX_PATH_CHARS = 1024  # longer paths cannot be created on most file systems anyway
MAX_NAME_BYTES = 255  # one path component (NAME_MAX on Linux)

_CHUNK = 64 * 1024
_SUPPORTED_COMPRESSION = {
    zipfile.ZIP_STORED,
    zipfile.ZIP_DEFLATED,
    zipfile.ZIP_BZIP2,
    zipfile.ZIP_LZMA,
}
_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A fixed timestamp and attributes make zip_from_source byte-for-byte reproducible.
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_CHILD_FLAG = "--analyze-main"


class CodeError(ValueError):
    """Uploaded code is unacceptable; str(error) is the one-line reason shown to the user."""


@dataclass(frozen=True)
class CodeCheck:
    """Outcome of check_zip; `log` is shown to the user, its last line says why on failure."""

    ok: bool
    log: list[str]
    files: int


class _Reject(Exception):
    """Internal: stop checking with this reason (becomes the last log line)."""


def check_zip(data: bytes) -> CodeCheck:
    """Validate an uploaded zip without extracting it; never raises, whatever the bytes."""
    log: list[str] = []
    counter = [0]
    try:
        _check(data, log, counter)
    except _Reject as reason:
        log.append(str(reason))
        return CodeCheck(ok=False, log=log, files=counter[0])
    except Exception as error:  # a last resort: hostile input must never crash the caller
        log.append(f"could not read the archive: {_one_line(error)}")
        return CodeCheck(ok=False, log=log, files=counter[0])
    return CodeCheck(ok=True, log=log, files=counter[0])


def safe_extract(data: bytes, dest: Path) -> None:
    """Extract a checked archive into dest; raises CodeError on anything check_zip rejects.

    Extraction re-validates every path and counts real bytes (not the declared sizes), so it
    stays safe even if the archive were to differ from what check_zip saw.
    """
    data = bytes(data)  # an immutable copy: nothing can change between check and extract
    result = check_zip(data)
    if not result.ok:
        raise CodeError(result.log[-1])
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    written = 0
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            parts = _safe_parts(info)
            target = root.joinpath(*parts)
            if not target.resolve().is_relative_to(root):
                raise CodeError(f"unsafe path {info.filename!r}")
            if info.is_dir():
                target.mkdir(mode=0o755, parents=True, exist_ok=True)
                continue
            target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            # Read-only like Lambda's /var/task; keep the exec bit for bundled scripts.
            mode = 0o555 if (info.external_attr >> 16) & 0o111 else 0o444
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(target, flags, mode)
            with os.fdopen(fd, "wb") as out, archive.open(info) as src:
                while chunk := src.read(_CHUNK):
                    written += len(chunk)
                    if written > MAX_UNZIPPED_BYTES:
                        raise CodeError(
                            f"archive unzips to more than {MAX_UNZIPPED_BYTES} bytes; "
                            f"the limit is {MAX_UNZIPPED_BYTES} bytes"
                        )
                    out.write(chunk)


def zip_from_source(source: str) -> bytes:
    """Wrap a single source string as main.py in a zip (same source, same bytes)."""
    info = zipfile.ZipInfo("main.py", date_time=_FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # Unix, so external_attr carries a regular-file mode
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(info, source.encode("utf-8"), compresslevel=6)
    return buffer.getvalue()


# --- the checks -------------------------------------------------------------------------------


def _check(data: bytes, log: list[str], counter: list[int]) -> None:
    """All rules in order, cheapest first; raises _Reject with the reason."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _Reject(f"the upload must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise _Reject("the upload is empty")
    log.append(f"upload: {len(data)} bytes")
    if len(data) > MAX_ZIP_BYTES:
        raise _Reject(f"archive is {len(data)} bytes; the limit is {MAX_ZIP_BYTES} bytes")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except Exception as error:
        raise _Reject(f"not a zip archive ({_one_line(error)})") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ENTRIES:
            raise _Reject(f"too many entries: {len(infos)}; the limit is {MAX_ENTRIES}")
        _check_entries(infos)
        files = [info for info in infos if not info.is_dir()]
        counter[0] = len(files)
        declared = sum(info.file_size for info in files)
        if declared > MAX_UNZIPPED_BYTES:
            raise _Reject(
                f"archive unzips to {declared} bytes; the limit is {MAX_UNZIPPED_BYTES} bytes"
            )
        main = next((info for info in files if info.filename == "main.py"), None)
        if main is None:
            nested = [i.filename for i in files if i.filename.endswith("/main.py")]
            if nested:
                log.append(
                    f"found {nested[0]!r}: zip the folder's contents, not the folder itself"
                )
            raise _Reject("main.py not found at the top of the archive")
        actual, source = _read_all(archive, files, main)
    log.append(f"archive: {len(files)} files, {actual} bytes unzipped")
    _check_main(source, log)


def _check_entries(infos: list[zipfile.ZipInfo]) -> None:
    """Per-entry rules: safe paths, regular files only, no encryption, no duplicates."""
    seen: set[str] = set()
    file_names: set[str] = set()
    for info in infos:
        _safe_parts(info, reject=_Reject)
        name = info.filename.rstrip("/")
        if name in seen:
            raise _Reject(f"duplicate entry {info.filename!r}")
        seen.add(name)
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFLNK:
            raise _Reject(f"symlink not allowed: {info.filename!r}")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise _Reject(f"special file not allowed: {info.filename!r}")
        if info.flag_bits & 0x1:
            raise _Reject(f"encrypted entry not allowed: {info.filename!r}")
        if info.compress_type not in _SUPPORTED_COMPRESSION:
            raise _Reject(
                f"entry {info.filename!r} uses unsupported compression method "
                f"{info.compress_type}"
            )
        if not info.is_dir():
            file_names.add(name)
    # A name used both as a file and as a folder ("a" and "a/b") cannot be extracted.
    for name in seen:
        parts = name.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in file_names:
                raise _Reject(f"{parent!r} is both a file and a folder")


def _safe_parts(info: zipfile.ZipInfo, reject: type[Exception] = CodeError) -> list[str]:
    """The path components of an entry, or raise if the path could land outside the target."""
    raw = info.orig_filename
    name = info.filename
    unsafe = reject(f"unsafe path {raw!r}")
    if (
        not name
        or "\x00" in raw
        or "\\" in name
        or name.startswith("/")
        or _DRIVE.match(name)
        or _CONTROL.search(name)
    ):
        raise unsafe
    parts = (name[:-1] if name.endswith("/") else name).split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise unsafe
    if len(name) > MAX_PATH_CHARS or any(
        len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES for part in parts
    ):
        raise reject(f"path too long: {name[:80]!r}...")
    return parts


def _read_all(
    archive: zipfile.ZipFile, files: list[zipfile.ZipInfo], main: zipfile.ZipInfo
) -> tuple[int, bytes]:
    """Decompress everything (checking CRCs) and count real bytes; return them and main.py."""
    total = 0
    source = b""
    for info in files:
        keep = info is main
        chunks: list[bytes] = []
        try:
            with archive.open(info) as entry:
                while chunk := entry.read(_CHUNK):
                    total += len(chunk)
                    if total > MAX_UNZIPPED_BYTES:
                        raise _Reject(
                            f"archive unzips to more than {MAX_UNZIPPED_BYTES} bytes; "
                            f"the limit is {MAX_UNZIPPED_BYTES} bytes"
                        )
                    if keep:
                        chunks.append(chunk)
        except _Reject:
            raise
        except Exception as error:
            raise _Reject(f"entry {info.filename!r} is corrupt: {_one_line(error)}") from None
        if keep:
            source = b"".join(chunks)
    return total, source


def _check_main(source: bytes, log: list[str]) -> None:
    """main.py must be UTF-8, compile, and bind a synchronous `handler` at module level."""
    try:
        source.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _Reject(f"main.py is not UTF-8 (invalid byte at offset {error.start})") from None
    if len(source) <= MAX_INPROCESS_COMPILE_BYTES or not sys.executable:
        ok, line = analyze_main(source)
    else:
        ok, line = _analyze_in_child(source)
    if not ok:
        raise _Reject(line)
    log.append(line)


def analyze_main(source: bytes) -> tuple[bool, str]:
    """Compile main.py (never run it) and find `handler`: (ok, the log line saying so)."""
    try:
        tree = ast.parse(source, "main.py")
        # Full compilation also catches what the parser alone does not
        # (e.g. 'return' outside function).
        compile(tree, "main.py", "exec", dont_inherit=True)
    except SyntaxError as error:
        line = f" line {error.lineno}" if error.lineno else ""
        return False, f"main.py{line}: {error.msg or 'invalid syntax'}"
    except MemoryError as error:  # also how CPython reports "parser stack overflowed"
        detail = _one_line(error) or "out of memory"
        return False, f"main.py is too large or complex to compile ({detail})"
    except (ValueError, RecursionError) as error:
        return False, f"main.py does not compile: {_one_line(error) or type(error).__name__}"
    binding = _handler_binding(tree.body)
    if binding == "async":
        return False, (
            "main.py defines handler with 'async def'; async handlers are not supported, "
            "use 'def handler(event, context)'"
        )
    if binding == "star":
        return True, "main.py compiles; handler is assumed to come from a 'from ... import *'"
    if binding is None:
        return False, "main.py does not define handler"
    if binding.startswith("value:"):
        return False, (f"main.py binds handler to {binding.removeprefix('value:')}; it must be "
                       "a function: def handler(event, context)")
    return True, "main.py compiles and defines handler"


def _analyze_in_child(source: bytes) -> tuple[bool, str]:
    """analyze_main in a child process with memory and CPU limits.

    Compiling is cheap to ask for and expensive to do: a few MB of source (a few kB zipped)
    can take minutes and gigabytes, which must not land on the process serving uploads.
    """
    command = [sys.executable, "-I", "-B", str(Path(__file__).resolve()), _CHILD_FLAG,
               str(COMPILE_MEMORY_MB), str(COMPILE_CPU_S)]
    too_complex = "main.py is too large or complex to compile"
    try:
        done = subprocess.run(
            command, input=source, capture_output=True, timeout=COMPILE_TIMEOUT_S,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, cwd="/",
        )
    except subprocess.TimeoutExpired:
        return False, f"{too_complex} (took more than {COMPILE_TIMEOUT_S} s)"
    except OSError as error:
        return False, f"could not check main.py: {_one_line(error)}"
    try:
        verdict = json.loads(done.stdout.decode("utf-8").strip().splitlines()[-1])
        return bool(verdict["ok"]), str(verdict["line"])
    except (ValueError, IndexError, KeyError, TypeError):
        return False, f"{too_complex} (the check ran out of memory or time)"


def _child_main(memory_mb: int, cpu_s: int) -> None:
    """Entry point of the compile-check child: limit itself, analyze stdin, print JSON."""
    import resource

    for which, soft, hard in [
        (resource.RLIMIT_AS, memory_mb * 1024 * 1024, memory_mb * 1024 * 1024),
        (resource.RLIMIT_CPU, cpu_s, cpu_s + 1),
        (resource.RLIMIT_CORE, 0, 0),
    ]:
        _, current = resource.getrlimit(which)
        if current != resource.RLIM_INFINITY:
            hard = min(hard, current)
        resource.setrlimit(which, (min(soft, hard), hard))
    try:
        ok, line = analyze_main(sys.stdin.buffer.read())
    except MemoryError:
        ok, line = False, "main.py is too large or complex to compile (out of memory)"
    print(json.dumps({"ok": ok, "line": line}), flush=True)


def _handler_binding(body: list[ast.stmt]) -> str | None:
    """How the module binds `handler`: "def", "async", "star" (maybe via import *) or None.

    Looks at module-level statements, including those nested in if/try/with/for/while blocks
    (still module level), never inside functions or classes. The last binding wins, as at
    run time.
    """
    found: str | None = None
    star = False
    for node in body:
        kind: str | None = None
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name == "handler":
            kind = "def"
        elif isinstance(node, ast.AsyncFunctionDef) and node.name == "handler":
            kind = "async"
        elif isinstance(node, ast.Assign):
            if any(_binds_handler(target) for target in node.targets):
                kind = _assigned(node.value, node.targets)
        elif isinstance(node, ast.AnnAssign):
            if node.value is not None and _binds_handler(node.target):
                kind = _assigned(node.value, [node.target])
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    star = True
                elif (alias.asname or alias.name) == "handler":
                    kind = "def"
        elif isinstance(node, ast.If | ast.For | ast.AsyncFor | ast.While | ast.With
                        | ast.AsyncWith | ast.Try | ast.TryStar):
            for block in _blocks(node):
                inner = _handler_binding(block)
                if inner == "star":
                    star = True
                elif inner is not None:
                    kind = inner
        if kind is not None:
            found = kind
    if found is None and star:
        return "star"
    return found


# Expressions whose value is never callable: `handler = 5` would fail every run.
_NOT_CALLABLE = {
    ast.Constant: "a constant", ast.List: "a list", ast.Tuple: "a tuple", ast.Dict: "a dict",
    ast.Set: "a set", ast.JoinedStr: "a string", ast.ListComp: "a list",
    ast.SetComp: "a set", ast.DictComp: "a dict", ast.GeneratorExp: "a generator",
}


def _assigned(value: ast.expr, targets: list[ast.expr]) -> str:
    """"def", or "value:<what>" when the plain name handler gets a value that no call of it
    could ever work on."""
    plain = any(isinstance(target, ast.Name) for target in targets)
    what = _NOT_CALLABLE.get(type(value))
    if plain and what:
        if isinstance(value, ast.Constant):
            what = f"{type(value.value).__name__} {ast.unparse(value)[:40]}"
        return f"value:{what}"
    return "def"


def _blocks(node: ast.stmt) -> list[list[ast.stmt]]:
    """The statement lists directly inside a compound statement."""
    blocks = [getattr(node, field, None) for field in ("body", "orelse", "finalbody")]
    blocks.extend(handler.body for handler in getattr(node, "handlers", []))
    return [block for block in blocks if block]


def _binds_handler(target: ast.expr) -> bool:
    """Whether an assignment target binds the plain name `handler` (tuples included)."""
    if isinstance(target, ast.Name):
        return target.id == "handler"
    if isinstance(target, ast.Tuple | ast.List):
        return any(_binds_handler(element) for element in target.elts)
    if isinstance(target, ast.Starred):
        return _binds_handler(target.value)
    return False


def _one_line(error: BaseException) -> str:
    """An exception as one short line (zipfile messages can embed raw bytes)."""
    try:
        text = str(error)
    except Exception:
        text = type(error).__name__
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:197] + "..."


if __name__ == "__main__" and sys.argv[1:2] == [_CHILD_FLAG]:
    _child_main(int(sys.argv[2]), int(sys.argv[3]))
