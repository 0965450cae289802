"""POST /gc/{endpointId}, no token: the body and query run the endpoint's function → 201 {id}.

The caller's address is API Gateway's requestContext.http.sourceIp, never a header the caller
writes (X-Forwarded-For is theirs to forge)."""

from taskfn import api, apidoc, aws
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.endpoints import PublicCall, PublicService

app = api.resolver(greencloud.error_response)
public = PublicService.from_env()
aws.client("sqs")  # every call sends: build the client during init, not on a request


@app.post("/gc/<endpoint_id>", **apidoc.route(
    doc.API, operation_id="callEndpoint", summary="Call a public endpoint (no token)",
    description="Runs a task of the endpoint's function as its owner's; the JSON body and the "
                "query become event.body and event.query. 403 when the endpoint lists "
                "origins or IP addresses and the call's is not one, or when it is outside "
                "the endpoint's time window; 429 when its daily limit (UTC) is spent.",
    body={"required": False, "content": {"application/json": {"schema": {}}}},
    answers={201: doc.created("task")}, errors=(400, 403, 404, 409, 413, 429), public=True))
def call_endpoint(endpoint_id: str):
    event = app.current_event
    data = api.raw_body(app)
    public.tasks.check_size(len(data))
    body = greencloud.parse_task_body(data, event.headers.get("content-type"))
    task = public.call(endpoint_id, PublicCall(
        origin=event.headers.get("origin"), source_ip=event.request_context.http.source_ip,
        body=body, query=api.query(app), size=len(data)))
    return api.json_response(201, {"id": task.task_guid})


handler = api.entrypoint(app)
