"""The Coder Go client's wire contract, read from the seed itself, for tests of the tasks API.

The seed (codersdk/aitasks.go) is what Coder's clients compile against, so an answer is right
when Go's encoding/json could have produced it from these types, and a request is right when
it is what that client sends. The types, enums and routes are parsed from the seed at import
(not copied by hand) so a newer seed moves the checks with it. The seed is one long line (its
line breaks were lost), so a `//` comment has no known end: the parser anchors on what code
has and prose lacks (struct tags, `Name Type = "value"`, balanced braces) and refuses a struct
body it cannot account for rather than guessing.

Types the seed uses but does not define get an explicit table (EXTERNAL_TYPES), taken from
the real codersdk (workspacebuilds.go, workspaceagents.go) and from google/uuid and time.
"""

from __future__ import annotations

import json
import os
import re
import uuid as _uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any, NamedTuple

SEED_PATH = Path(os.environ.get("CODER_SDK_SEED", "/work/shared/seeds/coder-tasks-sdk.go.txt"))

ZERO_UUID = "00000000-0000-0000-0000-000000000000"
ZERO_TIME = "0001-01-01T00:00:00Z"  # time.Time{} as encoding/json writes it


class ParseError(ValueError):
    """The seed holds something the parser cannot account for; better loud than a wrong schema."""


# --------------------------------------------------------------------------- schema types


@dataclass(frozen=True)
class Field:
    """One struct field as encoding/json sees it."""

    go_name: str
    json_name: str
    go_type: str  # as written: "uuid.UUID", "*TaskStateEntry", "[]Task"
    omitempty: bool
    format: str | None = None  # the `format:` tag (swagger hint), e.g. "uuid", "date-time"
    enums: tuple[str, ...] | None = None  # the `enums:` (or `enum:`) tag, as written
    enums_key: str | None = None  # which key held it: "enums" (swag's) or "enum" (ignored by swag)
    tags: dict[str, str] = field(default_factory=dict, compare=False)
    # Whether an answer must carry the key. Go always writes a non-omitempty field, so for the
    # seed's structs this is `not omitempty`; external tables may relax it (see WorkspaceBuild).
    required: bool = True

    @property
    def pointer(self) -> bool:
        return self.go_type.startswith("*")

    @property
    def nullable(self) -> bool:
        """Whether Go's encoder can write null here (nil pointer/slice/map, invalid Null*)."""
        return _nullable(_parse_type(self.go_type))


@dataclass(frozen=True)
class Struct:
    name: str
    fields: tuple[Field, ...]

    def field(self, name: str) -> Field:
        """A field by JSON name or Go name."""
        for f in self.fields:
            if name in (f.json_name, f.go_name):
                return f
        raise KeyError(f"{self.name} has no field {name!r}")

    @property
    def json_names(self) -> list[str]:
        return [f.json_name for f in self.fields]


class Route(NamedTuple):
    """One client call: what the Go client requests and which status it takes as success.

    `path` is the fmt pattern with each %s replaced by `{arg}` (the Go argument's name, e.g.
    `{user}`, `{id}`) or by the literal when the client passes one (TaskByID sends "me").
    """

    name: str
    method: str
    path: str
    status: HTTPStatus

    @property
    def params(self) -> list[str]:
        return re.findall(r"\{(\w+)\}", self.path)

    def fill(self, **values: object) -> str:
        """A concrete path, the way the client formats it (values' str(), unescaped)."""
        missing = set(self.params) - values.keys()
        if missing:
            raise TypeError(f"{self.name}: missing path values {sorted(missing)}")
        return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]), self.path)

    def regex(self) -> re.Pattern[str]:
        """Matches concrete paths of this route (one segment per parameter)."""
        parts = re.split(r"(\{\w+\})", self.path)
        body = "".join(
            f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts
        )
        return re.compile(f"^{body}$")

    def matches(self, method: str, path: str) -> bool:
        return method.upper() == self.method and self.regex().match(path) is not None


class RouteIO(NamedTuple):
    """The Go types a route sends and decodes (None: no body / nothing decoded)."""

    request: str | None
    response: str | None
    query: bool  # the client adds a query string (Tasks: ?q=<filter>)


@dataclass(frozen=True)
class Schema:
    structs: dict[str, Struct]
    enums: dict[str, tuple[str, ...]]  # string types with their const values, in source order
    routes: list[Route]
    route_io: dict[str, RouteIO]


@dataclass(frozen=True)
class ExternalType:
    """JSON rules for a type the seed uses but does not define."""

    kind: str  # uuid | time | string | enum | struct | object
    nullable: bool = False  # encoding/json can write null for it
    enums: tuple[str, ...] | None = None
    struct: Struct | None = None
    zero: Any = None  # what encoding/json writes for the Go zero value
    source: str = ""


# --------------------------------------------------------------------------- the external table


def _ext_struct(name: str, *fields: tuple[str, str, str, bool, bool]) -> Struct:
    return Struct(
        name,
        tuple(
            Field(go, js, typ, omitempty=omit, required=req, tags={"json": js})
            for go, js, typ, omit, req in fields
        ),
    )


_WORKSPACE_STATUS = (
    "pending", "starting", "running", "stopping", "stopped",
    "failed", "canceling", "canceled", "deleting", "deleted",
)  # fmt: skip

_AGENT_LIFECYCLE = (
    "created", "starting", "start_timeout", "start_error", "ready",
    "shutting_down", "shutdown_timeout", "shutdown_error", "off",
)  # fmt: skip

EXTERNAL_TYPES: dict[str, ExternalType] = {
    # github.com/google/uuid: UUID is [16]byte with MarshalText (lowercase 8-4-4-4-12). An
    # array is never "empty" to encoding/json, so omitempty never drops it: the zero UUID goes
    # out as a string of zeros.
    "uuid.UUID": ExternalType("uuid", zero=ZERO_UUID, source="google/uuid"),
    # NullUUID{UUID, Valid}: MarshalJSON writes null when !Valid. A struct is never "empty"
    # either, so an omitempty NullUUID still goes out (as null).
    "uuid.NullUUID": ExternalType("uuid", nullable=True, zero=None, source="google/uuid"),
    # time.Time: MarshalJSON writes RFC 3339 with nanoseconds trimmed; UnmarshalJSON wants
    # RFC 3339 (fraction optional, zone Z or ±hh:mm). A struct, so omitempty never drops it.
    "time.Time": ExternalType("time", zero=ZERO_TIME, source="time"),
    # codersdk.NullTime (sql.NullTime): null when !Valid.
    "NullTime": ExternalType("time", nullable=True, zero=None, source="codersdk/time.go"),
    "WorkspaceStatus": ExternalType(
        "enum", enums=_WORKSPACE_STATUS, zero="", source="codersdk/workspacebuilds.go"
    ),
    "WorkspaceTransition": ExternalType(
        "enum", enums=("start", "stop", "delete"), zero="", source="codersdk/workspacebuilds.go"
    ),
    # BuildReason's const set has grown upstream (dormancy, cli, ...): checked as a string.
    "BuildReason": ExternalType("string", zero="", source="codersdk/workspacebuilds.go"),
    "WorkspaceAgentLifecycle": ExternalType(
        "enum",
        enums=_AGENT_LIFECYCLE,
        zero="",
        source="codersdk/workspaceagents.go",
    ),
    "WorkspaceAgentHealth": ExternalType(
        "struct",
        struct=_ext_struct(
            "WorkspaceAgentHealth",
            ("Healthy", "healthy", "bool", False, True),
            ("Reason", "reason", "string", True, False),
        ),
        source="codersdk/workspaceagents.go",
    ),
    # The reference requires {id, transition, status, created_at} of a pause/resume build;
    # the rest of upstream's fields are known (so strict mode accepts them) and type-checked
    # when present, but not required.
    "WorkspaceBuild": ExternalType(
        "struct",
        struct=_ext_struct(
            "WorkspaceBuild",
            ("ID", "id", "uuid.UUID", False, True),
            ("CreatedAt", "created_at", "time.Time", False, True),
            ("UpdatedAt", "updated_at", "time.Time", False, False),
            ("WorkspaceID", "workspace_id", "uuid.UUID", False, False),
            ("WorkspaceName", "workspace_name", "string", False, False),
            ("WorkspaceOwnerID", "workspace_owner_id", "uuid.UUID", False, False),
            ("WorkspaceOwnerName", "workspace_owner_name", "string", False, False),
            ("WorkspaceOwnerAvatarURL", "workspace_owner_avatar_url", "string", False, False),
            ("TemplateVersionID", "template_version_id", "uuid.UUID", False, False),
            ("TemplateVersionName", "template_version_name", "string", False, False),
            ("BuildNumber", "build_number", "int32", False, False),
            ("Transition", "transition", "WorkspaceTransition", False, True),
            ("InitiatorID", "initiator_id", "uuid.UUID", False, False),
            ("InitiatorUsername", "initiator_name", "string", False, False),
            ("Job", "job", "ProvisionerJob", False, False),
            ("Reason", "reason", "BuildReason", False, False),
            ("Resources", "resources", "[]WorkspaceResource", False, False),
            ("Deadline", "deadline", "NullTime", True, False),
            ("MaxDeadline", "max_deadline", "NullTime", True, False),
            ("Status", "status", "WorkspaceStatus", False, True),
            ("DailyCost", "daily_cost", "int32", False, False),
        ),
        source="codersdk/workspacebuilds.go",
    ),
    # Not modelled further: any JSON object passes.
    "ProvisionerJob": ExternalType("object", zero={}, source="codersdk/provisionerdaemons.go"),
    "WorkspaceResource": ExternalType("object", zero={}, source="codersdk/workspacebuilds.go"),
}

_INT_RANGES = {
    "int": (-(2**63), 2**63 - 1),  # 64-bit platforms
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint": (0, 2**64 - 1),
    "uint8": (0, 2**8 - 1),
    "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
}


# --------------------------------------------------------------------------- Go type expressions


def _parse_type(expr: str) -> tuple:
    """`*[]map[string]X` -> ("ptr", ("slice", ("map", "string", ("named", "X"))))."""
    expr = expr.strip()
    if expr.startswith("*"):
        return ("ptr", _parse_type(expr[1:]))
    if expr.startswith("[]"):
        return ("slice", _parse_type(expr[2:]))
    if expr.startswith("map["):
        depth, i = 0, 3
        for i in range(3, len(expr)):
            depth += {"[": 1, "]": -1}.get(expr[i], 0)
            if depth == 0:
                break
        return ("map", expr[4:i], _parse_type(expr[i + 1 :]))
    if expr in ("interface{}", "any"):
        return ("named", "any")
    if not re.fullmatch(r"[A-Za-z_][\w.]*", expr):
        raise ParseError(f"unsupported Go type {expr!r}")
    return ("named", expr)


def _nullable(t: tuple) -> bool:
    if t[0] in ("ptr", "slice", "map"):
        return True
    ext = EXTERNAL_TYPES.get(t[1])
    return t[1] in ("any", "json.RawMessage") or (ext is not None and ext.nullable)


def _type_str(t: tuple) -> str:
    match t:
        case ("ptr", inner):
            return "*" + _type_str(inner)
        case ("slice", inner):
            return "[]" + _type_str(inner)
        case ("map", key, inner):
            return f"map[{key}]" + _type_str(inner)
        case (_, name):
            return name
    raise AssertionError(t)


# --------------------------------------------------------------------------- the parser


_TYPE_STRUCT = re.compile(r"(?<![\w.])type\s+([A-Za-z_]\w*)\s+struct\s*\{")
_TYPE_STRING = re.compile(r"(?<![\w.])type\s+([A-Za-z_]\w*)\s+string\b")
_FIELD = re.compile(r"(?<![\w.*\]\[])([A-Za-z_]\w*)\s+([\w.*\[\]]+)\s+`([^`]*)`")
_TAG = re.compile(r'(\w+):"((?:[^"\\]|\\.)*)"')
_METHOD = re.compile(r"(?<![\w.])func\s+\(\s*\w+\s+\*?Client\s*\)\s+([A-Za-z_]\w*)\s*\(")
_REQUEST = re.compile(r"\bc\.Request\(\s*ctx\s*,\s*http\.Method(\w+)\s*,\s*")
_STATUS = re.compile(r"\bres\.StatusCode\s*!=\s*http\.Status(\w+)")


def _skip_string(text: str, i: int) -> int:
    """Index just past the Go string literal starting at text[i] (`"` or a backtick)."""
    quote = text[i]
    j = i + 1
    while j < len(text):
        if quote == '"' and text[j] == "\\":
            j += 2
            continue
        if text[j] == quote:
            return j + 1
        j += 1
    raise ParseError(f"unterminated string at offset {i}")


def _matching(text: str, i: int, open_: str = "{", close: str = "}") -> int:
    """Index of the bracket closing text[i], skipping string literals."""
    depth = 0
    j = i
    while j < len(text):
        c = text[j]
        if c in '"`':
            j = _skip_string(text, j)
            continue
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return j
        j += 1
    raise ParseError(f"unbalanced {open_!r} at offset {i}")


def _split_args(text: str) -> list[str]:
    """Split a Go argument list at top-level commas."""
    args, depth, start, j = [], 0, 0, 0
    while j < len(text):
        c = text[j]
        if c in '"`':
            j = _skip_string(text, j)
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            args.append(text[start:j].strip())
            start = j + 1
        j += 1
    tail = text[start:].strip()
    if tail:
        args.append(tail)
    return args


def _parse_fields(struct_name: str, body: str) -> tuple[Field, ...]:
    fields: list[Field] = []
    pos = 0
    for m in _FIELD.finditer(body):
        _check_residue(struct_name, body[pos : m.start()])
        pos = m.end()
        go_name, go_type, raw_tag = m.groups()
        _parse_type(go_type)  # refuse what the checker could not follow
        tags = dict(_TAG.findall(raw_tag))
        json_tag = tags.get("json", "")
        name, _, opts = json_tag.partition(",")
        if name == "-" and not opts:
            continue  # never on the wire
        options = set(opts.split(",")) if opts else set()
        enums_key = "enums" if "enums" in tags else "enum" if "enum" in tags else None
        omitempty = "omitempty" in options
        fields.append(
            Field(
                go_name=go_name,
                json_name=name or go_name,
                go_type=go_type,
                omitempty=omitempty,
                format=tags.get("format"),
                enums=tuple(tags[enums_key].split(",")) if enums_key else None,
                enums_key=enums_key,
                tags=tags,
                required=not omitempty,
            )
        )
    _check_residue(struct_name, body[pos:])
    return tuple(fields)


def _check_residue(struct_name: str, text: str) -> None:
    """Between tagged fields only comments may stand; anything else is a field we'd miss."""
    text = text.strip()
    if text and not text.startswith("//"):
        raise ParseError(f"struct {struct_name}: cannot account for {text[:60]!r}")


def _param_types(params: str) -> dict[str, str]:
    """`ctx context.Context, owner, ident string` -> {"ctx": ..., "owner": "string", ...}."""
    out: dict[str, str] = {}
    pending: list[str] = []
    for arg in _split_args(params):
        parts = arg.split(None, 1)
        if len(parts) == 1:
            pending.append(parts[0])
            continue
        for name in [*pending, parts[0]]:
            out[name] = parts[1].strip()
        pending = []
    return out


def _go_status(name: str) -> HTTPStatus:
    snake = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).upper()
    try:
        return HTTPStatus[snake]
    except KeyError:
        raise ParseError(f"unknown status http.Status{name}") from None


def _parse_routes(text: str) -> tuple[list[Route], dict[str, RouteIO]]:
    routes: list[Route] = []
    io: dict[str, RouteIO] = {}
    for m in _METHOD.finditer(text):
        name = m.group(1)
        params_end = _matching(text, m.end() - 1, "(", ")")
        params = _param_types(text[m.end() : params_end])
        body_start = text.index("{", params_end)
        body = text[body_start : _matching(text, body_start) + 1]
        req = _REQUEST.search(body)
        if req is None:
            continue  # delegates to other calls (TaskByIdentifier)
        open_at = req.start() + len("c.Request")
        args = _split_args(body[open_at + 1 : _matching(body, open_at, "(", ")")])
        path = _path_template(name, args[2])
        status = _STATUS.search(body, req.end())
        if status is None:
            raise ParseError(f"{name}: no success status check after c.Request")
        routes.append(Route(name, req.group(1).upper(), path, _go_status(status.group(1))))
        body_arg = args[3] if len(args) > 3 else "nil"
        decoded = re.search(r"Decode\(&(\w+)\)", body)
        response = None
        if decoded:
            var = re.search(rf"\bvar\s+{decoded.group(1)}\s+([\w.*\[\]]+)", body)
            response = var.group(1) if var else None
        io[name] = RouteIO(
            request=None if body_arg == "nil" else params.get(body_arg, body_arg),
            response=response,
            query=len(args) > 4,
        )
    return routes, io


def _path_template(func: str, expr: str) -> str:
    literal = re.fullmatch(r'"([^"]*)"', expr)
    if literal:
        return literal.group(1)
    sprintf = re.fullmatch(r"fmt\.Sprintf\((.*)\)", expr, re.S)
    if not sprintf:
        raise ParseError(f"{func}: unsupported path expression {expr!r}")
    fmt_str, *values = _split_args(sprintf.group(1))
    pattern = json.loads(fmt_str)  # a Go interpreted string, close enough for paths
    if pattern.count("%s") != len(values) or "%" in pattern.replace("%s", ""):
        raise ParseError(f"{func}: path verbs and arguments disagree in {expr!r}")
    out = pattern
    for value in values:
        lit = re.fullmatch(r'"([^"]*)"', value)
        ident = re.fullmatch(r"(\w+)(?:\.String\(\))?", value)
        if lit:
            rep = lit.group(1)
        elif ident:
            rep = "{" + ident.group(1) + "}"
        else:
            raise ParseError(f"{func}: unsupported path argument {value!r}")
        out = out.replace("%s", rep, 1)
    return out


def parse_seed(text: str) -> Schema:
    """Structs, string enums and client routes of a Go source (newlines optional)."""
    structs: dict[str, Struct] = {}
    for m in _TYPE_STRUCT.finditer(text):
        open_at = m.end() - 1
        body = text[open_at + 1 : _matching(text, open_at)]
        structs[m.group(1)] = Struct(m.group(1), _parse_fields(m.group(1), body))
    enums: dict[str, tuple[str, ...]] = {}
    for m in _TYPE_STRING.finditer(text):
        type_name = m.group(1)
        consts = re.findall(rf'(?<![\w.])[A-Za-z_]\w*\s+{type_name}\s*=\s*"([^"]*)"', text)
        if len(set(consts)) != len(consts):
            raise ParseError(f"{type_name}: duplicate const values {consts}")
        enums[type_name] = tuple(consts)
    routes, io = _parse_routes(text)
    return Schema(structs, enums, routes, io)


SCHEMA = parse_seed(SEED_PATH.read_text(encoding="utf-8"))
STRUCTS = SCHEMA.structs
ENUMS = SCHEMA.enums
ROUTES = SCHEMA.routes
ROUTE_IO = SCHEMA.route_io


def enum_tag_disagreements() -> list[str]:
    """Fields whose swagger enum tag differs from their type's const values (doc drift)."""
    out = []
    for struct in STRUCTS.values():
        for f in struct.fields:
            base = f.go_type.lstrip("*")
            values = ENUMS.get(base) or (EXTERNAL_TYPES.get(base) or ExternalType("")).enums
            if f.enums is None or values is None:
                continue
            if set(f.enums) != set(values):
                out.append(
                    f"{struct.name}.{f.go_name}: tag {f.enums_key}:{','.join(f.enums)!r} "
                    f"vs {base} consts {','.join(values)!r}"
                )
    return out


# --------------------------------------------------------------------------- checking answers

_UUID_RE = re.compile(r"(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-](\d{2}):(\d{2}))"
)


def _time_problem(s: str) -> str | None:
    """Why time.Time.UnmarshalJSON would refuse s (None if it takes it)."""
    m = _TIME_RE.fullmatch(s)
    if not m:
        return "not RFC 3339 (want YYYY-MM-DDTHH:MM:SS[.frac](Z|±hh:mm))"
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    if not 1 <= month <= 12 or not 1 <= day <= days[month - 1]:
        return "date out of range"
    if hour > 23 or minute > 59 or second > 59:
        return "time of day out of range"
    if m.group(9) is not None and (int(m.group(9)) > 23 or int(m.group(10)) > 59):
        return "zone offset out of range"
    return None


def _describe(value: object) -> str:
    text = json.dumps(value) if _jsonable(value) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _jsonable(value: object) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


_JSON_KIND = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return _JSON_KIND.get(type(value), type(value).__name__)


def _lookup_struct(name: str) -> Struct | None:
    if name in STRUCTS:
        return STRUCTS[name]
    ext = EXTERNAL_TYPES.get(name)
    return ext.struct if ext else None


@dataclass(frozen=True)
class _Ctx:
    out: list[str]
    strict: bool  # report undeclared keys
    enums: bool = True  # check enum membership (Go's type system does not)


def _check(value: Any, t: tuple, path: str, ctx: _Ctx, f: Field | None) -> None:
    out = ctx.out
    if value is None:
        if not _nullable(t):
            out.append(f"{path}: null, but Go type {_type_str(t)} is never null")
        return
    match t:
        case ("ptr", inner):
            _check(value, inner, path, ctx, f)
        case ("slice", inner):
            if not isinstance(value, list):
                out.append(f"{path}: want array ({_type_str(t)}), got {_kind(value)}")
                return
            for i, item in enumerate(value):
                _check(item, inner, f"{path}[{i}]", ctx, None)
        case ("map", _key, inner):
            if not isinstance(value, dict):
                out.append(f"{path}: want object ({_type_str(t)}), got {_kind(value)}")
                return
            for k, item in value.items():
                _check(item, inner, f"{path}[{k!r}]", ctx, None)
        case ("named", name):
            _check_named(value, name, path, ctx, f)


def _check_named(value: Any, name: str, path: str, ctx: _Ctx, f: Field | None) -> None:
    out = ctx.out
    struct = _lookup_struct(name)
    if struct is not None:
        _check_struct(value, struct, path, ctx)
        return
    ext = EXTERNAL_TYPES.get(name)
    if name in ENUMS or (ext is not None and ext.kind == "enum"):
        values = ENUMS.get(name) or (ext.enums if ext else ())
        if not isinstance(value, str):
            out.append(f"{path}: want string ({name}), got {_kind(value)}")
        elif ctx.enums and value not in values:
            out.append(f"{path}: {_describe(value)} is not a {name}: one of {', '.join(values)}")
        return
    kind = ext.kind if ext is not None else name
    if kind == "uuid":
        if not isinstance(value, str):
            out.append(f"{path}: want UUID string ({name}), got {_kind(value)}")
        elif not _UUID_RE.fullmatch(value):
            out.append(f"{path}: {_describe(value)} is not a UUID (8-4-4-4-12 hex)")
    elif kind == "time":
        if not isinstance(value, str):
            out.append(f"{path}: want RFC 3339 string ({name}), got {_kind(value)}")
        elif problem := _time_problem(value):
            out.append(f"{path}: {_describe(value)}: {problem}")
    elif kind == "object":
        if not isinstance(value, dict):
            out.append(f"{path}: want object ({name}), got {_kind(value)}")
    elif kind == "string":
        if not isinstance(value, str):
            out.append(f"{path}: want string ({name}), got {_kind(value)}")
            return
        if ctx.enums and f is not None and f.enums is not None and value not in f.enums:
            out.append(f"{path}: {_describe(value)} is not one of {', '.join(f.enums)}")
        if f is not None and f.format == "uuid" and not _UUID_RE.fullmatch(value):
            out.append(f"{path}: {_describe(value)} is not a UUID (format:uuid)")
        if f is not None and f.format == "date-time" and (problem := _time_problem(value)):
            out.append(f"{path}: {_describe(value)}: {problem} (format:date-time)")
    elif kind == "bool":
        if not isinstance(value, bool):
            out.append(f"{path}: want boolean, got {_kind(value)}")
    elif kind in _INT_RANGES:
        lo, hi = _INT_RANGES[kind]
        if isinstance(value, bool) or not isinstance(value, int):
            # Go parses an integer field with ParseInt: 1.0 and 1e2 are refused too.
            out.append(f"{path}: want integer ({kind}), got {_kind(value)} {_describe(value)}")
        elif not lo <= value <= hi:
            out.append(f"{path}: {value} overflows {kind}")
    elif kind in ("float32", "float64"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            out.append(f"{path}: want number ({kind}), got {_kind(value)}")
    elif kind in ("any", "json.RawMessage"):
        pass
    else:
        raise KeyError(f"no JSON rules for Go type {name!r}: add it to EXTERNAL_TYPES")


def _check_struct(value: Any, struct: Struct, path: str, ctx: _Ctx) -> None:
    out = ctx.out
    if not isinstance(value, dict):
        out.append(f"{path}: want object ({struct.name}), got {_kind(value)}")
        return
    for f in struct.fields:
        where = f"{path}.{f.json_name}"
        if f.json_name not in value:
            if f.required:
                out.append(f"{where}: missing ({struct.name}.{f.go_name} {f.go_type})")
            continue
        _check(value[f.json_name], _parse_type(f.go_type), where, ctx, f)
    if ctx.strict:
        known = {f.json_name for f in struct.fields}
        for key in value:
            if key not in known:
                hint = next((k for k in known if k.lower() == str(key).lower()), None)
                extra = f" (did you mean {hint!r}?)" if hint else ""
                out.append(f"{path}.{key}: unexpected key for {struct.name}{extra}")


def check(value: Any, type_name: str, *, strict: bool = False) -> list[str]:
    """Mismatches between a decoded JSON value and a Go type (empty list: it fits).

    type_name is a seed or external type ("Task") or a type expression ("[]Task",
    "*TaskStateEntry"). Non-omitempty fields must be present; omitempty ones may be absent;
    null only where Go writes null. Go's decoder itself is laxer (it ignores null for most
    types and matches keys case-insensitively); this checks what a Go encoder would emit.
    strict=True also reports keys the type does not declare.
    """
    ctx = _Ctx([], strict)
    _check(value, _parse_type(type_name), "$", ctx, None)
    return ctx.out


def assert_matches(value: Any, type_name: str, *, strict: bool = False) -> None:
    """check(), raising AssertionError that lists every mismatch."""
    problems = check(value, type_name, strict=strict)
    if problems:
        listing = "\n  ".join(problems)
        raise AssertionError(f"{len(problems)} mismatch(es) against {type_name}:\n  {listing}")


# --------------------------------------------------------------------------- building requests


def request_fields(type_name: str) -> list[str]:
    """JSON names of a struct, in declaration order (what the client may send)."""
    struct = _lookup_struct(type_name)
    if struct is None:
        raise KeyError(f"{type_name} is not a known struct")
    return struct.json_names


def go_zero(type_name: str) -> Any:
    """What encoding/json writes for the Go zero value of a type."""
    t = _parse_type(type_name)
    if t[0] != "named":
        return None  # nil pointer, slice, map
    name = t[1]
    struct = _lookup_struct(name)
    if struct is not None:
        return go_request_body(name)
    if name in ENUMS or name == "string":
        return ""
    if name == "bool":
        return False
    if name in _INT_RANGES or name in ("float32", "float64"):
        return 0
    if name in EXTERNAL_TYPES:
        return EXTERNAL_TYPES[name].zero
    return None


def _go_empty(value: Any, t: tuple) -> bool:
    """encoding/json's isEmptyValue, by Go kind: arrays (UUID) and structs are never empty."""
    if t[0] in ("ptr", "slice", "map"):
        return value is None or (t[0] != "ptr" and len(value) == 0)
    name = t[1]
    if _lookup_struct(name) is not None:
        return False
    ext = EXTERNAL_TYPES.get(name)
    if ext is not None and ext.kind in ("uuid", "time", "object", "struct"):
        return False  # [16]byte, time.Time, NullUUID, NullTime: array or struct kinds
    return value in ("", 0)  # "", False, 0, 0.0


def _encode(value: Any) -> Any:
    if isinstance(value, _uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: Go times carry a zone")
        text = value.isoformat()
        return text[:-6] + "Z" if value.utcoffset() == timedelta(0) else text
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def go_request_body(type_name: str, **fields: Any) -> dict[str, Any]:
    """The JSON object the Go client's encoding/json sends for a struct literal.

    Keyword names are JSON names or Go field names; unset fields take Go's zero value;
    omitempty fields whose value is empty (by Go kind) are dropped. Note that a uuid.UUID is
    an array, so even with omitempty the zero UUID is sent (CreateTaskRequest's
    template_version_preset_id). Values are checked against the type: the Go client could
    not send a wrong one, so a test asking for one is a mistake (build that dict by hand).
    """
    struct = _lookup_struct(type_name)
    if struct is None:
        raise KeyError(f"{type_name} is not a known struct")
    given: dict[str, Any] = {}
    for key, value in fields.items():
        try:
            f = struct.field(key)
        except KeyError:
            raise TypeError(f"{type_name} has no field {key!r}") from None
        if f.json_name in given:
            raise TypeError(f"{type_name}.{f.go_name} given twice")
        given[f.json_name] = value
    body: dict[str, Any] = {}
    for f in struct.fields:
        t = _parse_type(f.go_type)
        if f.json_name in given:
            value = _encode(given[f.json_name])
            inner = t[1] if t[0] == "ptr" else t
            nested = _lookup_struct(inner[1]) if inner[0] == "named" else None
            if nested is not None and isinstance(value, dict):
                value = go_request_body(nested.name, **value)
        else:
            value = go_zero(f.go_type)
        if f.omitempty and _go_empty(value, t):
            continue
        body[f.json_name] = value
    ctx = _Ctx([], strict=False, enums=False)  # a Go string type takes any string
    _check(body, _parse_type(type_name), "$", ctx, None)
    problems = ctx.out
    if problems:
        raise ValueError(f"the Go client could not send this {type_name}: {problems}")
    return body


def now_rfc3339() -> str:
    """A current time the way Go writes one (RFC 3339, UTC, Z)."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
