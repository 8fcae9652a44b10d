"""The OpenAPI document, the local docs page, and a schemathesis run against the live app."""

from __future__ import annotations

import re
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
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
    # Submissions only enqueue (no worker); keep any `?wait` short. /api/health is left out:
    # without workers it is 503 by design (test_api_basics covers it both ways).
    app.config["MODELPORT"] = app.config["MODELPORT"].model_copy(
        update={"MAX_WAIT_SECONDS": 0.05, "RATE_LIMIT_SUBMISSIONS": "off"}
    )
    return schemathesis.openapi.from_wsgi("/api/openapi.json", app).exclude(
        path_regex=r"^/api/(docs|health)"
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
    assert len(operations) >= 13

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


def _operations_by_id(doc: dict) -> dict[str, tuple[str, str]]:
    return {
        op["operationId"]: (method, path)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    }


def test_links_lead_from_a_created_resource_to_it(client):
    """Every OpenAPI link, followed from a real answer, reaches the resource it names."""
    doc = client.get("/api/openapi.json").get_json()
    by_id = _operations_by_id(doc)
    created = {
        ("/api/generate", "202"): client.post(
            "/api/generate?wait=0", json={"modelUrl": "links/model"}
        ),
        ("/api/benchmark", "202"): client.post(
            "/api/benchmark", json={"modelId": "links/model", "device": "cpu"}
        ),
        ("/api/deployments", "201"): client.post(
            "/api/deployments", json={"modelId": "links/model", "url": "http://127.0.0.1:9"}
        ),
    }
    created[("/api/alerts", "201")] = client.post(
        "/api/alerts", json={"modelId": "links/model", "kind": "memory_pct", "threshold": 90}
    )
    followed = 0
    for (path, status), answer in created.items():
        assert answer.status_code == int(status), answer.get_json()
        links = doc["paths"][path]["post"]["responses"][status]["links"]
        # reads before deletes: a link must still resolve when it is followed
        for name, link in sorted(links.items(), key=lambda kv: kv[1]["operationId"][:3] != "get"):
            method, target = by_id[link["operationId"]]
            url = target
            for param, expression in link["parameters"].items():
                pointer = expression.removeprefix("$response.body#/")
                url = url.replace("{" + param + "}", str(answer.get_json()[pointer]))
            response = client.open(url, method=method.upper())
            documented = doc["paths"][target][method]["responses"]
            assert str(response.status_code) in documented, (name, url, response.status_code)
            # the link reached the resource: found, or (cancelling a job a worker already
            # finished) a conflict with its state
            assert response.status_code < 400 or response.status_code == 409, (name, url)
            if response.status_code == 409:
                assert name == "CancelJob", name
            followed += 1
    assert followed == sum(len(links) for links in _links(doc))


def _links(doc: dict):
    for ops in doc["paths"].values():
        for op in ops.values():
            for answer in op["responses"].values():
                if "links" in answer:
                    yield answer["links"]


def _empty_platform() -> None:
    from sqlalchemy import delete

    from modelport.core.db import session_scope
    from modelport.core.models import AlertRule, Deployment, Event, Job, Metric, Model
    from modelport.core.redis_client import get_redis

    with session_scope() as session:
        for table in (AlertRule, Deployment, Event, Metric, Job, Model):
            session.execute(delete(table))
    get_redis().flushdb()


def test_stateful_run_follows_links(app, api_schema):
    """schemathesis chains calls through the document's links (submit -> poll, create ->
    read -> delete): every step answers as documented, and linked steps reach real resources.

    Sequences must replay identically for hypothesis, so no answer may depend on how fast
    the suite's worker is: no `?wait` (a submission is always 202) and no cancelling (200 or
    409 depending on the worker; the cancel link is followed in the test above)."""
    app.config["MODELPORT"] = app.config["MODELPORT"].model_copy(update={"MAX_WAIT_SECONDS": 0})
    seen: Counter = Counter()
    base = api_schema.exclude(method="DELETE", path="/api/jobs/{jobId}").as_state_machine()

    class Machine(base):
        def after_call(self, response, case):
            seen[(case.method, case.path, response.status_code)] += 1

        def validate_response(self, response, case, **kwargs):
            case.validate_response(response, checks=CHECKS)
            if response.status_code >= 400:
                assert set(response.json()["error"]) >= {"code", "message", "details"}

        def teardown(self):
            # each sequence starts from the same state, so hypothesis can replay it
            _empty_platform()

    _empty_platform()
    Machine.run(
        settings=settings(
            max_examples=60,
            derandomize=True,
            stateful_step_count=6,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
    )
    # links were followed to jobs that exist (a random id would be a 404)
    assert seen[("GET", "/api/jobs/{jobId}", 200)] >= 1, seen
    assert not any(k[:2] == ("DELETE", "/api/jobs/{jobId}") for k in seen)
