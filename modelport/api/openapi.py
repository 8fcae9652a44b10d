"""GET /api/openapi.json (built from the request/response models) and GET /api/docs.

The docs page is Swagger UI from the swagger-ui-bundle package's files, served here under
/api/docs/: no CDN, so it works on a closed network.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import Blueprint, Response, abort, jsonify, send_from_directory
from pydantic import BaseModel

from modelport.api import openapi_models as om
from modelport.core import schemas

bp = Blueprint("openapi", __name__, url_prefix="/api")

REF = "#/components/schemas/{model}"
REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    schemas.GenerateRequest,
    schemas.BenchmarkRequest,
    schemas.MonitorRequest,
    schemas.DeploymentCreate,
    schemas.AlertRuleCreate,
)
ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
          "favicon-32x32.png", "favicon-16x16.png")  # fmt: skip
# Routes deliberately left out of the document (the test checks everything else is in it).
UNDOCUMENTED = ("/ws", "/", "/dashboard", "/static/")

DESCRIPTION = """\
modelport's REST API: submit generation and benchmark jobs, poll them, and monitor \
deployments. Every error is `{"error": {"code", "message", "details"}}` with SPEC's codes \
(see the README's Error codes). Every route but `/api/health` and this document needs \
`Authorization: Bearer <key>` when keys are required (production or REQUIRE_API_KEY). \
A method a path does not support answers 405 in the same error format.

Not described here: the WebSocket `/ws` (see the README's Realtime section), the dashboard \
pages `/` and `/dashboard`, and its static files under `/static/`.
"""


def _schema(model: type[BaseModel], components: dict[str, Any]) -> None:
    schema = model.model_json_schema(ref_template=REF)
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


ERRORS = {
    "400": "Bad request: not JSON, invalid values (1003, `details.fields`), bad model (1001)",
    "401": "A valid API key is required (1007)",
    "404": "Not found (1008)",
    "409": "Conflict (1011)",
    "413": "Request body too large (1006)",
    "422": "The job failed on the model or options (1001/1003), answered when waiting",
    "429": "Too many submissions (1009); `Retry-After` says when to retry",
    "500": "Internal error or a failed job (1002/1004/1005/1012)",
    "503": "Database or Redis unavailable (1010); `Retry-After` set",
}


def _op(summary, ok: dict[str, Any], errors, *, body=None, params=(), open_=False, tag="jobs"):
    responses = dict(ok)
    for status in sorted(set(errors) | {"500", "503"} | (set() if open_ else {"401"})):
        responses[status] = _json("ErrorBody", ERRORS[status])
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if params:
        op["parameters"] = list(params)
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    if open_:
        op["security"] = []
    return op


def _param(name, where, schema, description="", required=False):
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "schema": schema,
        "description": description,
    }


WAIT = _param(
    "wait", "query", {"type": "number", "minimum": 0},
    "Seconds to wait for the job to end (capped at MAX_WAIT_SECONDS)",
)  # fmt: skip
MODEL_ID = _param("modelId", "query", {"type": "string"}, "Model repo id, e.g. org/name")
JOB_ID = _param("jobId", "path", {"type": "string"})
DEPLOYMENT_ID = _param("deploymentId", "path", {"type": "string"})
RULE_ID = _param("ruleId", "path", {"type": "integer", "minimum": 0})
ACCEPTED = {
    "202": {
        **_json("JobAccepted", "Accepted: the job is queued; poll `Location`"),
        "headers": {"Location": {"schema": {"type": "string"}}},
    }
}
SUBMIT_ERRORS = ("400", "413", "422", "429")


def _paths() -> dict[str, Any]:
    return {
        "/api/health": {
            "get": _op(
                "Database, Redis and workers per queue",
                {"200": _json("Health", "Healthy"), "503": _json("Health", "Degraded")},
                (),
                open_=True,
                tag="health",
            )
        },
        "/api/generate": {
            "post": _op(
                "Generate a deployment bundle (a job)",
                {"200": _json("GenerateResponse", "Done (cached, or within `wait`)"), **ACCEPTED},
                (*SUBMIT_ERRORS, "404", "409"),  # fromBenchmark: unknown, or cannot back one
                body="GenerateRequest",
                params=[WAIT],
                tag="generate",
            )
        },
        "/api/benchmark": {
            "post": _op(
                "Benchmark a model over batch sizes (a job)",
                {"200": _json("BenchmarkResponse", "Done (cached, or within `wait`)"), **ACCEPTED},
                SUBMIT_ERRORS,
                body="BenchmarkRequest",
                params=[WAIT],
                tag="benchmark",
            )
        },
        "/api/jobs": {
            "get": _op(
                "List jobs, newest first",
                {"200": _json("JobList", "A page of jobs (without results)")},
                ("400",),
                params=[
                    _param("status", "query", {"type": "string", "enum": list(_statuses())}),
                    _param("kind", "query", {"type": "string", "enum": ["generate", "benchmark"]}),
                    MODEL_ID,
                    _param("page", "query", {"type": "integer", "minimum": 1, "maximum": 10**6}),
                    _param("perPage", "query", {"type": "integer", "minimum": 1, "maximum": 100}),
                ],
            )
        },
        "/api/jobs/{jobId}": {
            "get": _op(
                "A job's status, progress, stage, attempts and result",
                {"200": _json("Job", "The job")},
                ("400", "404"),
                params=[JOB_ID, WAIT],
            ),
            "delete": _op(
                "Cancel a job",
                {"200": _json("Job", "Cancelled")},
                ("404", "409"),
                params=[JOB_ID],
            ),
        },
        "/api/monitor": {
            "post": _op(
                "Statistics, trends, plots and recommendations for a model",
                {"200": _json("MonitorResponse", "The report")},
                ("400", "404", "413"),
                body="MonitorRequest",
                tag="monitoring",
            )
        },
        "/api/deployments": {
            "get": _op(
                "List registered deployments",
                {"200": _json("DeploymentList", "Deployments")},
                (),
                params=[MODEL_ID],
                tag="monitoring",
            ),
            "post": _op(
                "Register a running run_inference.py server to be sampled",
                {
                    "201": {
                        **_json("Deployment", "Registered"),
                        "headers": {"Location": {"schema": {"type": "string"}}},
                    }
                },
                ("400", "413"),
                body="DeploymentCreate",
                tag="monitoring",
            ),
        },
        "/api/deployments/{deploymentId}": {
            "get": _op(
                "One deployment",
                {"200": _json("Deployment", "The deployment")},
                ("404",),
                params=[DEPLOYMENT_ID],
                tag="monitoring",
            ),
            "delete": _op(
                "Unregister a deployment",
                {"204": {"description": "Deleted"}},
                ("404",),
                params=[DEPLOYMENT_ID],
                tag="monitoring",
            ),
        },
        "/api/alerts": {
            "get": _op(
                "A model's alert rules (built-in defaults when it has none)",
                {"200": _json("AlertRuleList", "Rules")},
                ("400",),
                params=[{**MODEL_ID, "required": True}],
                tag="monitoring",
            ),
            "post": _op(
                "Create an alert rule",
                {"201": _json("AlertRule", "Created")},
                ("400", "404", "413"),
                body="AlertRuleCreate",
                tag="monitoring",
            ),
        },
        "/api/alerts/{ruleId}": {
            "delete": _op(
                "Delete an alert rule",
                {"204": {"description": "Deleted"}},
                ("404",),
                params=[RULE_ID],
                tag="monitoring",
            )
        },
        "/api/openapi.json": {
            "get": _op(
                "This document",
                {"200": {"description": "OpenAPI 3.1 JSON", "content": {"application/json": {}}}},
                (),
                open_=True,
                tag="docs",
            )
        },
        "/api/docs": {
            "get": _op(
                "Swagger UI for this document",
                {"200": {"description": "HTML", "content": {"text/html": {}}}},
                (),
                open_=True,
                tag="docs",
            )
        },
        "/api/docs/{filename}": {
            "get": _op(
                "Swagger UI's files (served locally)",
                {"200": {"description": "The file"}},
                ("404",),
                params=[_param("filename", "path", {"type": "string", "enum": list(ASSETS)})],
                open_=True,
                tag="docs",
            )
        },
    }


def _statuses() -> tuple[str, ...]:
    from modelport.core.models import JOB_STATUSES

    return JOB_STATUSES


def operation_id(method: str, path: str) -> str:
    """`get /api/jobs/{jobId}` -> `getJobsByJobId`: stable ids for clients and links."""
    words = []
    for part in path.removeprefix("/api/").split("/"):
        if part.startswith("{"):
            name = part.strip("{}")
            words.append("By" + name[0].upper() + name[1:])
        else:
            words += [w[:1].upper() + w[1:] for w in part.replace(".", "_").split("_") if w]
    return method + "".join(words)


# What a created resource's answer leads to: OpenAPI links (clients, and schemathesis's
# stateful runs, follow them from the answer to the next call).
LINKS = {
    ("/api/generate", "post", "202"): {
        "GetJob": ("getJobsByJobId", {"jobId": "$response.body#/jobId"}),
        "CancelJob": ("deleteJobsByJobId", {"jobId": "$response.body#/jobId"}),
    },
    ("/api/benchmark", "post", "202"): {
        "GetJob": ("getJobsByJobId", {"jobId": "$response.body#/jobId"}),
        "CancelJob": ("deleteJobsByJobId", {"jobId": "$response.body#/jobId"}),
    },
    ("/api/deployments", "post", "201"): {
        "GetDeployment": ("getDeploymentsByDeploymentId", {"deploymentId": "$response.body#/id"}),
        "DeleteDeployment": (
            "deleteDeploymentsByDeploymentId",
            {"deploymentId": "$response.body#/id"},
        ),
    },
    ("/api/alerts", "post", "201"): {
        "DeleteAlert": ("deleteAlertsByRuleId", {"ruleId": "$response.body#/id"}),
    },
}


def _linked(paths: dict[str, Any]) -> dict[str, Any]:
    for path, operations in paths.items():
        for method, op in operations.items():
            op["operationId"] = operation_id(method, path)
    for (path, method, status), links in LINKS.items():
        paths[path][method]["responses"][status]["links"] = {
            name: {"operationId": target, "parameters": params}
            for name, (target, params) in links.items()
        }
    return paths


@cache
def build_document() -> dict[str, Any]:
    components: dict[str, Any] = {}
    for model in REQUEST_MODELS + om.RESPONSE_MODELS:
        _schema(model, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": "modelport API", "version": _version(), "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "paths": _linked(_paths()),
        "components": {
            "schemas": components,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
        # Keys are optional unless the platform requires them (then 401 without one).
        "security": [{"bearerAuth": []}, {}],
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("modelport")
    except PackageNotFoundError:
        return "0.0.0"


@bp.get("/openapi.json")
def document():
    return jsonify(build_document())


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>modelport API</title>
<link rel="stylesheet" href="docs/swagger-ui.css">
<link rel="icon" type="image/png" href="docs/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/swagger-ui-standalone-preset.js"></script>
<script>
window.ui = SwaggerUIBundle({url: "openapi.json", dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "StandaloneLayout", validatorUrl: null});
</script></body></html>
"""


@bp.get("/docs")
def docs():
    return Response(PAGE, mimetype="text/html")


@bp.get("/docs/<filename>")
def asset(filename: str):
    if filename not in ASSETS:
        abort(404)
    from swagger_ui_bundle import swagger_ui_path

    return send_from_directory(swagger_ui_path, filename, max_age=3600)
