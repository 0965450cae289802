"""Hostile functions: the attacks on the sandbox, as user code (main.py sources).

Each handler tries one way out and returns what it got, so that a test can assert that every
attempt failed and nothing secret came back. The same sources run through run_python, the
sandbox pool, the executor, an external cell and the local stack over HTTP.
"""

from __future__ import annotations

import json
import os
import time

# Reads the parent's environment and memory, traces it, and reads its command line; the body
# says for each what happened (the text read, or the error).
READ_PARENT = '''
import ctypes, os

def attempt(action):
    try:
        return {"ok": action()}
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"}

def read(path, size=1 << 20):
    with open(path, "rb") as file:
        return file.read(size).decode("latin-1")

def memory(pid):
    with open(f"/proc/{pid}/maps") as maps:
        regions = [line.split()[0].split("-") for line in maps if "rw-p" in line]
    text = []
    with open(f"/proc/{pid}/mem", "rb") as mem:
        for start, end in regions[:64]:
            mem.seek(int(start, 16))
            text.append(mem.read(min(int(end, 16) - int(start, 16), 1 << 20)).decode("latin-1"))
    return "".join(text)

def trace(pid):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ptrace(16, pid, None, None) != 0:  # PTRACE_ATTACH
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    libc.ptrace(17, pid, None, None)  # PTRACE_DETACH
    return "attached"

def handler(event, context):
    parent = os.getppid()
    return {
        "parent": parent,
        "environ": attempt(lambda: read(f"/proc/{parent}/environ")),
        "mem": attempt(lambda: memory(parent)),
        "ptrace": attempt(lambda: trace(parent)),
        "cmdline": attempt(lambda: read(f"/proc/{parent}/cmdline")),
    }
'''

# Every process's environment and memory this sandbox can read, as text (for secrets a test
# knows, such as AWS keys and tokens of the local stack).
READ_EVERY_PROCESS = '''
import os

def handler(event, context):
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        for name in ("environ", "mem"):
            try:
                if name == "environ":
                    with open(f"/proc/{pid}/environ", "rb") as file:
                        found[f"{pid}/environ"] = file.read().decode("latin-1")
                else:
                    with open(f"/proc/{pid}/maps") as maps:
                        start, end = maps.readline().split()[0].split("-")
                    with open(f"/proc/{pid}/mem", "rb") as mem:
                        mem.seek(int(start, 16))
                        found[f"{pid}/mem"] = mem.read(4096).decode("latin-1")
            except Exception:
                pass
    return found
'''

# A double-forked setsid daemon that closes every descriptor it inherited, so no pipe leads
# back to it; the body is its pid.
DAEMON = '''
import os, time

def handler(event, context):
    read_end, write_end = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(write_end, str(os.getpid()).encode())
            os.closerange(0, 65536)
            while True:
                time.sleep(1)
        os._exit(0)
    os.close(write_end)
    pid = int(os.read(read_end, 32))
    time.sleep(0.2)  # its parent has exited: it is an orphan now
    return {"daemon": pid}
'''

# Forks (each child leaves the group and sleeps) until the kernel refuses or `cap` is
# reached; the body is the pids it got.
FORK_BOMB = '''
import os, time

def handler(event, context):
    pids = []
    for _ in range(int(event["body"]["cap"])):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            os.setsid()
            time.sleep(600)
            os._exit(0)
        pids.append(pid)
    return {"pids": pids}
'''

# Rewrites every main.py it can reach under the cache root it is given (as an attacker who
# knows the layout would): write in place, chmod and write, or replace the directory. The body
# says what each attempt did.
POISON_CACHE = '''
import os, shutil

EVIL = "def handler(event, context):\\n    return 'poisoned'\\n"

def handler(event, context):
    root = event["body"]["cache"]
    report = {}
    try:
        entries = os.listdir(root)
    except OSError as error:
        return {"list": f"{type(error).__name__}: {error}"}
    for name in entries:
        target = os.path.join(root, name, "main.py")
        for how in ("write", "chmod", "replace"):
            try:
                if how == "chmod":
                    os.chmod(target, 0o666)
                    os.chmod(os.path.dirname(target), 0o777)
                if how == "replace":
                    os.unlink(target)
                with open(target, "w") as out:
                    out.write(EVIL)
                report[f"{name}/{how}"] = "written"
                break
            except OSError as error:
                report[f"{name}/{how}"] = f"{type(error).__name__}"
    return report
'''


# Processes that change pid faster than /proc can be read (fork, then the parent exits), so
# that no listing of /proc holds them long enough to kill them; the body is the run's uid.
PID_HOPPER = '''
import os, time

def handler(event, context):
    for _ in range(int(event["body"]["hoppers"])):
        try:
            pid = os.fork()
        except OSError:  # the process limit: hoppers hold it all
            break
        if pid == 0:
            os.setsid()
            while True:
                try:
                    if os.fork() != 0:
                        os._exit(0)
                except OSError:
                    time.sleep(0.0005)
    time.sleep(0.3)
    return {"uid": os.getuid()}
'''

# A directory chain deeper than any descriptor limit, in the run's own directory: removing it
# must neither fail the platform nor keep the run's user from serving again.
DEEP_TREE = '''
import os

def handler(event, context):
    fd = os.open(".", os.O_RDONLY)
    for _ in range(int(event["body"]["depth"])):
        os.mkdir("d", dir_fd=fd)
        deeper = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = deeper
    return {"uid": os.getuid(), "cwd": os.getcwd()}
'''

# Reads every staged code directory it can find in /tmp, looking for another run's secret.
STEAL_STAGED = '''
import glob, os, time

def handler(event, context):
    found = {}
    until = time.monotonic() + float(event["body"]["seconds"])
    while time.monotonic() < until:
        for path in glob.glob("/tmp/taskfn-code-*/code/*.py"):
            try:
                with open(path) as source:
                    found[path] = source.read()
            except OSError:
                pass
        time.sleep(0.02)
    return found
'''

# A SysV shared-memory segment (and so its memory) that would outlive the run.
LEAVE_SHARED_MEMORY = '''
import ctypes, os

def handler(event, context):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmget.restype = ctypes.c_int
    segment = libc.shmget(0x7A5C, 32 * 1024 * 1024, 0o1000 | 0o600)  # IPC_CREAT
    return {"uid": os.getuid(), "segment": segment, "errno": ctypes.get_errno()}
'''


def moto_probe_source() -> str:
    """Talks to the local stack's moto endpoint (given in the body) as an attacker with no
    credentials would: unsigned calls, calls signed with made-up keys, and moto's own API.
    The body maps each attempt to its HTTP status and the start of its answer."""
    return '''
import json, urllib.request, urllib.error
import boto3
from botocore.config import Config

def http(url, data=None, headers=None, method=None):
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return {"status": answer.status, "body": answer.read(2000).decode("latin-1")}
    except urllib.error.HTTPError as error:
        return {"status": error.code, "body": error.read(2000).decode("latin-1")}
    except Exception as error:
        return {"status": 0, "body": f"{type(error).__name__}: {error}"}

def signed(endpoint, service, call, **arguments):
    client = boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing",
                          config=Config(retries={"max_attempts": 1}))
    try:
        return {"status": 200, "body": json.dumps(getattr(client, call)(**arguments),
                                                  default=str)[:2000]}
    except Exception as error:
        response = getattr(error, "response", None) or {}
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return {"status": status, "body": f"{type(error).__name__}: {error}"[:2000]}

def handler(event, context):
    endpoint = event["body"]["endpoint"]
    table, bucket, queue = (event["body"][k] for k in ("table", "bucket", "queue"))
    target = {"Content-Type": "application/x-amz-json-1.0"}
    return {
        "dynamodb unsigned scan": http(endpoint + "/", json.dumps({"TableName": table}).encode(),
                                       {**target, "X-Amz-Target": "DynamoDB_20120810.Scan"}),
        "s3 unsigned list": http(f"{endpoint}/{bucket}?list-type=2"),
        "sqs unsigned receive": http(endpoint + "/", json.dumps({"QueueUrl": queue}).encode(),
                                     {"Content-Type": "application/x-amz-json-1.0",
                                      "X-Amz-Target": "AmazonSQS.ReceiveMessage"}),
        "dynamodb scan": signed(endpoint, "dynamodb", "scan", TableName=table),
        "dynamodb put": signed(endpoint, "dynamodb", "put_item", TableName=table,
                               Item={"PK": {"S": "TOKEN#evil"}, "SK": {"S": "TOKEN"}}),
        "s3 list": signed(endpoint, "s3", "list_objects_v2", Bucket=bucket),
        "sqs receive": signed(endpoint, "sqs", "receive_message", QueueUrl=queue),
        "iam create user": signed(endpoint, "iam", "create_user", UserName="evil"),
        "metadata, made-up signature": http(
            endpoint + "/latest/meta-data/iam/security-credentials/", headers={
                "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAAAAAAAAAAAAAAAAA/20261201/"
                                 "us-east-1/dynamodb/aws4_request, SignedHeaders=host, "
                                 "Signature=" + "0" * 64}),
        "malformed signature": http(endpoint + "/", json.dumps({"TableName": table}).encode(),
                                    {**target, "X-Amz-Target": "DynamoDB_20120810.Scan",
                                     "Authorization": "x"}),
        "moto data": http(endpoint + "/moto-api/data.json"),
        "moto dashboard": http(endpoint + "/moto-api/"),
        "moto auth off": http(endpoint + "/moto-api/reset-auth", b"inf", method="POST"),
        "moto reset": http(endpoint + "/moto-api/reset", b"", method="POST"),
    }
'''


def processes_of(uid: int) -> list[int]:
    """Live processes whose real uid is `uid`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            continue
        if int(fields["Uid"].split()[0]) == uid and fields["State"].split()[0] not in "ZX":
            found.append(int(entry))
    return found


def failed(attempt: dict) -> bool:
    """An attempt of READ_PARENT that was refused."""
    return set(attempt) == {"error"}


def wait_dead(pid: int, seconds: float = 0.0) -> bool:
    """True once /proc has no live process `pid` (a zombie counts as dead)."""
    until = time.monotonic() + seconds
    while True:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        if time.monotonic() >= until:
            return False
        time.sleep(0.05)


def body(result_body: str) -> dict:
    return json.loads(result_body)


def environment_with(secret: str) -> dict[str, str]:
    """This process's environment plus a secret, for a parent process started with it."""
    return {**os.environ, "TASKFN_TEST_SECRET": secret}
