"""Handlers in the local stack run concurrently, one request per thread, and Powertools keeps a
resolver's request on its base class (issue 9, found by the load benchmark): a request must
never be routed by, or read the body or caller of, another one running meanwhile."""

from __future__ import annotations

import threading

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from taskfn.local import threads


def event(method: str, path: str, body: str | None, user: str) -> dict:
    return {"version": "2.0", "routeKey": f"{method} {path}", "rawPath": path,
            "rawQueryString": "", "headers": {}, "body": body, "isBase64Encoded": False,
            "requestContext": {"stage": "$default", "http": {"method": method, "path": path},
                               "authorizer": {"lambda": {"user": user}}}}


def test_concurrent_requests_each_see_their_own_event_and_route():
    threads.install()
    create, read = APIGatewayHttpResolver(), APIGatewayHttpResolver()
    started, release = threading.Semaphore(0), threading.Event()
    creates: list[tuple[str, str, str]] = []
    reads: list[tuple[str, str]] = []

    @create.post("/v1/task/<fid>")
    def create_task(fid):
        started.release()
        release.wait(10)  # the other requests start meanwhile
        current = create.current_event
        creates.append((fid, current.body, current.request_context.authorizer.get_lambda["user"]))
        return {}

    @read.get("/v1/task/<tid>")
    def get_task(tid):
        reads.append((tid, read.current_event.request_context.authorizer.get_lambda["user"]))
        return {}

    workers = [threading.Thread(target=create.resolve, args=(
        event("POST", f"/v1/task/f{n}", f'{{"n": {n}}}', f"user{n}"), None)) for n in (1, 2)]
    for worker in workers:
        worker.start()
        assert started.acquire(timeout=10)
    read.resolve(event("GET", "/v1/task/t3", None, "bob"), None)
    release.set()
    for worker in workers:
        worker.join()
    assert reads == [("t3", "bob")]
    assert sorted(creates) == [("f1", '{"n": 1}', "user1"), ("f2", '{"n": 2}', "user2")]
