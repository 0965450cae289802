"""DELETE /v1/node/{hash} → 204: the node is disabled (its cell token gets no more work; what
still runs there is failed by convergence). PATCH restores it."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.models import Scope
from taskfn.services.nodes import NodeService

app = api.resolver(greencloud.error_response)
nodes = NodeService.from_env()


@app.delete("/v1/node/<node_hash>", **apidoc.route(
    doc.API, operation_id="disableNode", summary="Disable a node",
    answers={204: apidoc.Answer("disabled")}, errors=(404,)))
def disable_node(node_hash: str):
    nodes.set_disabled(api.caller(app, scopes=(Scope.USER, Scope.ADMIN)), node_hash, True)
    return api.empty()


handler = api.entrypoint(app)
