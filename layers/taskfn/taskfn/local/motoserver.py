"""moto's server in a process of its own, so the local stack's handlers and moto do not share
one interpreter lock: `python -m taskfn.local.motoserver` prints `moto: <url>` once it serves,
and exits when its standard input closes (that is, when the process that started it ends)."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys

READY_PREFIX = "moto: "


def main() -> int:
    from moto.server import ThreadedMotoServer

    from taskfn.local.atomic import make_dynamodb_writes_atomic

    make_dynamodb_writes_atomic()
    # Ctrl-C reaches the whole process group; the parent stops us once its pollers are done.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"{READY_PREFIX}http://{host}:{port}", flush=True)
    sys.stdin.read()  # returns at EOF: the parent has gone or asked us to stop
    server.stop()
    return 0


class MotoProcess:
    """Starts and stops the child; `endpoint` is its URL."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "taskfn.local.motoserver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline().strip()
        if not line.startswith(READY_PREFIX):
            self.stop()
            raise RuntimeError(f"moto did not start: {line!r}")
        self.endpoint = line[len(READY_PREFIX):]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


if __name__ == "__main__":
    sys.exit(main())
