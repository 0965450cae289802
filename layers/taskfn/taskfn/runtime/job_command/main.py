"""A fastlane job's command, run by the local stack's container stand-in inside the Python
sandbox (local/containers.py): the sandbox's confinement (its own uid, no_new_privs, seccomp,
process and memory limits, its private /tmp, /var/tmp and /dev/shm where the platform is
root, the sweep) holds for the command and everything it starts, as a container's would. The
command is run without a shell, as a container's command is; its output is the sandbox's.
Standard library only, like any user code: nothing of the platform is importable here."""

import os
import subprocess
import sys

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def handler(event, context):
    argv = [str(word) for word in event["argv"]]
    env = {"PATH": PATH, "HOME": os.environ.get("HOME", "/tmp"),
           "TMPDIR": os.environ.get("TMPDIR", "/tmp"), "LANG": "C.UTF-8",
           **{str(k): str(v) for k, v in (event.get("envs") or {}).items()}}
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        code = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL,
                              cwd=env["HOME"]).returncode
    except OSError as error:  # what a container runtime says of a missing executable
        print(f"exec {argv[0]}: {error.strerror}", file=sys.stderr, flush=True)
        code = 127
    return {"exitCode": code if code >= 0 else 128 - code}  # killed by signal n: 128 + n
