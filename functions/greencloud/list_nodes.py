"""GET /v1/node/list → [{hash, description, available, disabled, …}]: the caller's nodes."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud, greencloud_nodes
from taskfn.adapters import greencloud_doc as doc
from taskfn.adapters import greencloud_nodes_doc as node_doc
from taskfn.models import Scope, now_ns
from taskfn.services.nodes import NodeService

app = api.resolver(greencloud.error_response)
nodes = NodeService.from_env()


@app.get("/v1/node/list", **apidoc.route(
    doc.API, operation_id="listNodes", summary="The caller's nodes, oldest first",
    answers={200: apidoc.Answer("the nodes", node_doc.NODES)}))
def list_nodes():
    caller = api.caller(app, scopes=(Scope.USER, Scope.ADMIN))
    now = now_ns()
    return api.json_response(200, [greencloud_nodes.node_view(node, now, nodes.settings)
                                   for node in nodes.list(caller)])


handler = api.entrypoint(app)
