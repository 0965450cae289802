"""GET /healthcheck (and /healthcheck/ and /, as fastlane serves it), no token:
{dynamodb, s3, sqs, errors}, 200 when each answers, else 500 naming the failed check
(fastlane's shape over taskfn's dependencies)."""

from taskfn import api, apidoc
from taskfn.adapters import fastlane, fastlane_doc
from taskfn.services.health import HealthService

app = api.resolver(fastlane.error_response)
health = HealthService.from_env()

ROUTE = dict(
    operation_id="healthcheck", summary="Whether DynamoDB, S3 and SQS answer (no token)",
    answers={200: apidoc.Answer("every dependency answers", fastlane_doc.HEALTH),
             500: apidoc.Answer("a dependency failed: `errors` names it", fastlane_doc.HEALTH)},
    public=True)


@app.get("/healthcheck", **apidoc.route(apidoc.FASTLANE, **ROUTE))
def healthcheck():
    found = health.check()
    return api.json_response(200 if found.healthy else 500,
                             {**found.checks, "errors": found.errors})


@app.get("/healthcheck/", **apidoc.route(apidoc.FASTLANE, **{
    **ROUTE, "operation_id": "healthcheckSlash"}))
def healthcheck_slash():
    return healthcheck()


@app.get("/", **apidoc.route(apidoc.FASTLANE, **{**ROUTE, "operation_id": "healthcheckRoot"}))
def healthcheck_root():
    return healthcheck()


handler = api.entrypoint(app)
