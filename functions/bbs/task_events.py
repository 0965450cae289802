"""GET or POST /v1/events/tasks.r1 (BBS task events): the caller's task events as server-sent
events, from Last-Event-ID on. One answer per request: it returns as soon as events exist or
after the wait, and the client reconnects with the last id it saw (EventSource does so)."""

from taskfn import api, apidoc
from taskfn.adapters import bbs
from taskfn.adapters import bbs_doc as doc
from taskfn.services.events import TaskEvents

app = api.resolver(bbs.error_response)
events = TaskEvents.from_env()


@app.get("/v1/events/tasks.r1", **apidoc.route(
    doc.API, operation_id="followTaskEvents", summary="The caller's task events (EventSource)",
    parameters=doc.EVENTS, answers=doc.STREAM))
@app.post("/v1/events/tasks.r1", **apidoc.route(
    doc.API, operation_id="readTaskEvents", summary="The caller's task events (BBS clients)",
    parameters=doc.EVENTS, answers=doc.STREAM))
def task_events():
    caller = api.caller(app)  # a user's (or admin's) own tasks' events
    request = bbs.events_request(app, default_wait_s=events.settings.events_wait_s)
    context = app.lambda_context
    page = events.read(
        caller,
        request.last_event_id,
        wait_s=request.wait_s,
        time_left_s=lambda: context.get_remaining_time_in_millis() / 1000,
    )
    return bbs.event_stream(page)


handler = api.entrypoint(app)
