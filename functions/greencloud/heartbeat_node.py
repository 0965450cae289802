"""POST /v1/node/{hash}/heartbeat {running} → 204 (taskfn's extension, the node's cell token):
the node is up and runs `running` tasks; 403 once it is disabled."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.adapters import greencloud_nodes_doc as node_doc
from taskfn.models import Scope
from taskfn.services.nodes import NodeService

app = api.resolver(greencloud.error_response)
nodes = NodeService.from_env()


@app.post("/v1/node/<node_hash>/heartbeat", **apidoc.route(
    doc.API, operation_id="heartbeatNode", summary="A node says it is up (its cell token)",
    body=apidoc.json_body(node_doc.HEARTBEAT, required=False),
    answers={204: apidoc.Answer("noted")}, errors=(400, 413)))
def heartbeat_node(node_hash: str):
    caller = api.caller(app, scopes=(Scope.CELL,))
    body = api.json_object(app, limit=1024) if api.raw_body(app).strip() else {}
    nodes.heartbeat(caller, node_hash, body.get("running", 0))
    return api.empty()


handler = api.entrypoint(app)
