"""outbound.post with a user's headers: the platform's own are not sent twice."""

from __future__ import annotations

import socket
import threading
import time

from taskfn import outbound
from taskfn.services.hooks import request_headers


def serve(behave) -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)

    def loop():
        while True:
            conn, _ = sock.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    def handle(conn):
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            behave(conn, data)
        except OSError:
            pass
        finally:
            conn.close()

    threading.Thread(target=loop, daemon=True).start()
    return f"http://127.0.0.1:{sock.getsockname()[1]}/h"


def slowloris(conn, _):
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    for _ in range(100):
        conn.sendall(b"X-A: b\r\n")
        time.sleep(0.3)


def continues(conn, _):
    for _ in range(100000):
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")


def many_headers(conn, _):
    conn.sendall(b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 5000 + b"\r\n")


def huge_body(conn, _):
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(10000):
        conn.sendall(b"10000\r\n" + b"x" * 0x10000 + b"\r\n")


def test_a_lower_case_content_type_is_not_sent_twice():
    seen = []

    def record(conn, data):
        seen.append(data)
        conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")

    url = serve(record)
    outbound.post(url, b"{}", address="127.0.0.1", deadline_s=2.0,
                  headers=request_headers({"content-type": "text/plain"}))
    head = seen[0].split(b"\r\n\r\n")[0].lower()
    assert head.count(b"content-type:") == 1, head
