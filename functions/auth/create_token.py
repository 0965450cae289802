"""POST /v1/tokens (admin): {user, scope} → 201 {id, token, user, scope}; shown only once."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.models import Scope
from taskfn.services.tokens import TokenService

app = api.resolver(greencloud.error_response)
tokens = TokenService.from_env()


@app.post("/v1/tokens", **apidoc.route(
    doc.API, operation_id="createToken", summary="Issue a token (admin tokens only)",
    body=apidoc.json_body(apidoc.ref("NewToken")),
    answers={201: apidoc.Answer("the token, shown only this once", apidoc.ref("Token"))},
    errors=(400, 413)))
def create_token():
    api.caller(app, scopes=(Scope.ADMIN,))
    body = api.json_object(app, limit=4096)
    issued = tokens.create(body.get("user"), body.get("scope", "user"))
    return api.json_response(
        201,
        {"id": issued.id, "token": issued.token, "user": issued.user, "scope": issued.scope},
    )


handler = api.entrypoint(app)
