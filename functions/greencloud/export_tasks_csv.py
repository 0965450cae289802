"""GET /v1/task/{functionId}/csv: a function's tasks as CSV, the file itself when small, a 303
to it in S3 when large (taskfn.services.exports)."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.exports import INLINE_MAX_BYTES, URL_EXPIRES_S, ExportService

app = api.resolver(greencloud.error_response)
exports = ExportService.from_env()


@app.get("/v1/task/<function_id>/csv", **apidoc.route(
    doc.API, operation_id="exportTasksCsv", summary="A function's tasks as CSV",
    description="One row per task of the function, oldest first, created between dateSince "
                "and dateUntil (UTC days, both included) and still kept: ID, IssuedAt (RFC "
                "3339, UTC), Status (the function's HTTP status, 0 while unfinished), "
                "ContentType and Body (base64 unless showPlain). RFC 4180 with a header row; "
                "a cell that starts with =, +, -, @, a tab or a carriage return gets a "
                "leading single quote, so that a spreadsheet never runs it. An export that "
                "cannot end within the request's time is a 413: narrow the dates.",
    parameters=doc.CSV_QUERY,
    answers={200: apidoc.Answer(f"the CSV file (at most {INLINE_MAX_BYTES // 1024} KiB), as "
                                "an attachment", {"type": "string"}, media="text/csv"),
             303: apidoc.Answer(f"a larger CSV: at Location (a presigned S3 GET, "
                                f"{URL_EXPIRES_S // 60} minutes)", headers={
                                    "Location": {"schema": {"type": "string"}}}),
             413: apidoc.Answer("too many tasks to export within the request's time: "
                                "narrow dateSince and dateUntil", apidoc.ref(doc.API.error))},
    errors=(400, 404)))
def export_tasks_csv(function_id: str):
    caller = api.caller(app)
    exports.check_access(caller, function_id)
    request = greencloud.parse_csv_query(api.query(app))
    remaining_s = app.lambda_context.get_remaining_time_in_millis() / 1000
    export = exports.export(caller, function_id, request.filters,
                            greencloud.csv_renderer(plain=request.show_plain),
                            remaining_s=remaining_s, checked=True)
    return greencloud.csv_answer(function_id, export)


handler = api.entrypoint(app)
