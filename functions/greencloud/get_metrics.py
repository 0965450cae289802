"""GET /v1/metrics → {pendingTasks, pendingBuilds, activeNodes, freeNodes, busyNodes,
todayTasks, completedTasks} of the caller: counters and node heartbeats, no count of records."""

from taskfn import api, apidoc, wiring
from taskfn.adapters import greencloud, greencloud_nodes
from taskfn.adapters import greencloud_doc as doc
from taskfn.adapters import greencloud_nodes_doc as node_doc
from taskfn.models import Scope, now_ns
from taskfn.services.nodes import NodeService

app = api.resolver(greencloud.error_response)
nodes = NodeService.from_env()
counters = wiring.owner_metrics()


@app.get("/v1/metrics", **apidoc.route(
    doc.API, operation_id="getPlatformMetrics", summary="The caller's platform metrics",
    answers={200: apidoc.Answer("the metrics", node_doc.METRICS)}))
def get_metrics():
    caller = api.caller(app, scopes=(Scope.USER, Scope.ADMIN))
    now = now_ns()
    return api.json_response(200, greencloud_nodes.metrics_view(
        counters.read(caller.user, now), nodes.list(caller), now, nodes.settings))


handler = api.entrypoint(app)
