"""Where the CLI finds the platform and the token: a config file that `taskfn login` writes,
which TASKFN_API and TASKFN_TOKEN override (CI and one-off calls need no file)."""

import json
import os
import re
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

CONFIG_VARIABLE = "TASKFN_CONFIG"
API_VARIABLE = "TASKFN_API"
TOKEN_VARIABLE = "TASKFN_TOKEN"


# The tokens in use: an error message that would repeat one shows *** instead.
SECRETS: set[str] = set()
# A token goes in a header: printable ASCII only (a newline would be a header injection,
# and http.client's error about it would print the token).
_TOKEN = re.compile(r"^[\x21-\x7e]{1,4096}$")


class NotLoggedIn(Exception):
    """No URL or token anywhere: the one thing to say is how to give them."""


class BadSettings(NotLoggedIn):
    """A URL or token that cannot be used; the message names which, never the token."""


@dataclass(frozen=True)
class Settings:
    api: str
    token: str


def config_path() -> Path:
    """$TASKFN_CONFIG, else taskfn/config.json in $XDG_CONFIG_HOME (~/.config)."""
    given = os.environ.get(CONFIG_VARIABLE)
    if given:
        return Path(given)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "taskfn" / "config.json"


def load() -> dict[str, str]:
    """The file's settings; a missing or unreadable file is no settings (env may suffice).
    A file others may read is still used, with a warning: its token may be known."""
    path = config_path()
    try:
        text = path.read_text()
        mode = path.stat().st_mode
    except (OSError, ValueError):
        return {}
    if mode & 0o077:
        print(f"taskfn: warning: {path} may be read by other users (mode "
              f"{stat.S_IMODE(mode):04o}): `chmod 600 {path}`, and think of the token in it "
              "as known", file=sys.stderr, flush=True)
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def check(api: str, token: str) -> Settings:
    """The settings, or BadSettings saying what is wrong with them."""
    api, token = api.strip().rstrip("/"), token.strip()
    if not re.match(r"^https?://[^\s/?#]+", api) or re.search(r"[\x00-\x20\x7f]", api):
        raise BadSettings(f"the API URL must be an http(s) URL, got {api!r}")
    if not _TOKEN.match(token):
        raise BadSettings("the token holds a space, a control or a non-ASCII character")
    SECRETS.add(token)
    return Settings(api, token)


def save(api: str, token: str) -> Path:
    """Write the file with mode 0600 from its first byte (it holds a token): created under a
    fresh random name (O_EXCL: never a file or link that was there), then renamed over the
    old one. A symlink at the path is replaced, not written through."""
    path = config_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                                 dir=path.parent)
    except OSError as error:
        raise BadSettings(f"cannot write {path}: {error.strerror}") from None
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump({"api": api, "token": token}, file, indent=2)
            file.write("\n")
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise BadSettings(f"cannot write {path}: {error.strerror}") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def settings() -> Settings:
    """The URL and token to use: each variable wins over the file."""
    api, token = os.environ.get(API_VARIABLE), os.environ.get(TOKEN_VARIABLE)
    if not api or not token:  # the file only when needed (and only then its warning)
        kept = load()
        api, token = api or kept.get("api"), token or kept.get("token")
    if not api or not token:
        raise NotLoggedIn(
            f"not logged in: run `taskfn login --api URL --token T`, or set {API_VARIABLE} "
            f"and {TOKEN_VARIABLE}")
    return check(api, token)
