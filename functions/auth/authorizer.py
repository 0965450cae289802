"""The HTTP API Lambda authorizer (payload 2.0, simple responses).

It identifies the caller and passes {user, scope, tokenId, node, shared} to the route (a
cell token's node, and whether an admin registered it). An unknown token is
passed on with an empty user so the route answers 401 in its own API's error shape: HTTP API
itself can only answer 403 with a fixed body for a denial."""

from taskfn.services.tokens import TokenService

tokens = TokenService.from_env()


def handler(event: dict, context: object) -> dict:
    headers = event.get("headers") or {}
    # Coder's clients send their token as Coder-Session-Token (its tasks API, /api/...).
    caller = tokens.authenticate(headers.get("authorization")
                                 or headers.get("coder-session-token"))
    if caller is None:
        return {"isAuthorized": True, "context": {"user": "", "scope": "", "tokenId": "",
                                                  "node": "", "shared": ""}}
    return {
        "isAuthorized": True,
        "context": {"user": caller.user, "scope": caller.scope.value, "tokenId": caller.token_id,
                    "node": caller.node, "shared": "1" if caller.shared else ""},
    }
