"""WebSocket $disconnect: the connection's records removed, so the pump stops sending to it
(the client left, or the pump closed it)."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from taskfn.services.livelogs import LiveLogs

logger = Logger()
live = LiveLogs.from_env()


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    connection_id = ((event or {}).get("requestContext") or {}).get("connectionId")
    live.disconnect(connection_id if isinstance(connection_id, str) else "")
    return {"statusCode": 200}
