"""The OpenAPI document, the local docs page, and a schemathesis run against the live app."""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from modelport.api.openapi import UNDOCUMENTED


def _openapi_path(rule: str) -> str:
    path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)
    renames = {"job_id": "jobId", "deployment_id": "deploymentId", "rule_id": "ruleId"}
    for old, new in renames.items():
        path = path.replace("{" + old + "}", "{" + new + "}")
    return path


def test_document_is_valid_openapi(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    doc = response.get_json()
    schema = schemathesis.openapi.from_dict(doc)
    schema.validate()  # the OpenAPI 3.1 meta-schema
    for name, component in doc["components"]["schemas"].items():
        Draft202012Validator.check_schema(component)
    for name in ("GenerateRequest", "BenchmarkRequest", "ErrorBody", "JobAccepted", "Health"):
        assert name in doc["components"]["schemas"]
    for excluded in ("/ws", "/dashboard", "/static/"):
        assert f"`{excluded}" in doc["info"]["description"]


def test_every_api_route_is_documented(app, client):
    doc = client.get("/api/openapi.json").get_json()
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            assert rule.rule in UNDOCUMENTED or rule.rule.startswith("/static/"), rule.rule
            continue
        path = _openapi_path(rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            operation = doc["paths"].get(path, {}).get(method.lower())
            if operation is None:
                missing.append(f"{method} {path}")
                continue
            for status, answer in operation["responses"].items():
                if status.startswith(("4", "5")) and path != "/api/health":
                    ref = answer["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorBody"), (method, path, status)
    assert not missing, f"routes without documentation: {missing}"


def test_docs_page_uses_local_assets(client):
    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "http:" not in html and "https:" not in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(assets) >= 3
    assert all(not a.startswith(("/", "//")) and ":" not in a for a in assets), assets
    for asset in assets:
        answer = client.get(f"/api/{asset}")
        assert answer.status_code == 200, asset
        assert len(answer.get_data()) > 100, asset
    assert client.get("/api/docs/index.j2").status_code == 404


def test_docs_are_open_when_keys_are_required(app, client):
    settings_ = app.config["MODELPORT"]
    app.config["MODELPORT"] = settings_.model_copy(update={"REQUIRE_API_KEY": True})
    assert client.get("/api/openapi.json").status_code == 200
    assert client.get("/api/docs").status_code == 200
    assert client.get("/api/jobs").status_code == 401


@pytest.fixture()
def api_schema(app):
    # Submissions only enqueue (no worker); keep any `?wait` short.
    app.config["MODELPORT"] = app.config["MODELPORT"].model_copy(
        update={"MAX_WAIT_SECONDS": 0.05, "RATE_LIMIT_SUBMISSIONS": "off"}
    )
    return schemathesis.openapi.from_wsgi("/api/openapi.json", app).exclude(
        path_regex=r"^/api/docs"
    )


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def test_api_conforms_to_its_document(api_schema):
    """Every operation (docs pages aside) with generated data: no 5xx, answers as documented."""
    failures = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 14

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=30,
            deadline=None,
            derandomize=True,  # the same cases every CI run; widen max_examples to explore
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case):
            response = case.call_and_validate(checks=CHECKS)
            if response.status_code >= 400:
                body = response.json()
                assert set(body["error"]) >= {"code", "message", "details"}, body
                assert isinstance(body["error"]["code"], int)

        try:
            run()
        except Exception as exc:
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
