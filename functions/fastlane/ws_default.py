"""WebSocket $default: what a client sends is ignored (the stream is one way, as
upstream's), answered 200 so the connection stays open."""


def handler(event: dict, context: object) -> dict:
    return {"statusCode": 200}
