"""WebSocket $connect: a client following a job's (or one execution's) output live. It
authenticates with a token (HTTP Basic with the token as the password, as fastlane clients
send it, or taskfn's own header) or with a stream page's ticket; the connection is recorded
and handed to the log pump, which sends and closes as fastlane does (services/livelogs.py).
Anything but a 200 refuses the handshake with that status."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from taskfn.services.livelogs import LiveLogs

logger = Logger()
live = LiveLogs.from_env()


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    answer = live.connect(event if isinstance(event, dict) else {})
    logger.info("connect", extra={"status": answer["statusCode"]})
    return answer
