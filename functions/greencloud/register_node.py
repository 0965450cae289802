"""POST /v1/node/{hash} {description?, privileged?} → 201 {hash, cellId, token}: a new node and
its cell token, shown only this once (an admin's node is shared: it runs every owner's tasks)."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.adapters import greencloud_nodes_doc as node_doc
from taskfn.models import Scope
from taskfn.services.nodes import NodeService

app = api.resolver(greencloud.error_response)
nodes = NodeService.from_env()


@app.post("/v1/node/<node_hash>", **apidoc.route(
    doc.API, operation_id="registerNode", summary="Register a node and issue its cell token",
    body=apidoc.json_body(node_doc.NEW_NODE, required=False),
    answers={201: apidoc.Answer("registered; the token is shown only this once",
                                node_doc.REGISTERED)},
    errors=(400, 409, 413)))
def register_node(node_hash: str):
    caller = api.caller(app, scopes=(Scope.USER, Scope.ADMIN))
    body = api.json_object(app, limit=4096) if api.raw_body(app).strip() else {}
    node, issued = nodes.register(caller, node_hash, body)
    return api.json_response(201, {"hash": node.hash, "cellId": node.hash,
                                   "token": issued.token})


handler = api.entrypoint(app)
