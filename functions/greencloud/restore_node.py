"""PATCH /v1/node/{hash} → 200 with the node: a disabled node restored."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud, greencloud_nodes
from taskfn.adapters import greencloud_doc as doc
from taskfn.adapters import greencloud_nodes_doc as node_doc
from taskfn.models import Scope, now_ns
from taskfn.services.nodes import NodeService

app = api.resolver(greencloud.error_response)
nodes = NodeService.from_env()


@app.patch("/v1/node/<node_hash>", **apidoc.route(
    doc.API, operation_id="restoreNode", summary="Restore a disabled node",
    answers={200: apidoc.Answer("restored", node_doc.NODE)}, errors=(404,)))
def restore_node(node_hash: str):
    caller = api.caller(app, scopes=(Scope.USER, Scope.ADMIN))
    node = nodes.set_disabled(caller, node_hash, False)
    return api.json_response(200, greencloud_nodes.node_view(node, now_ns(), nodes.settings))


handler = api.entrypoint(app)
