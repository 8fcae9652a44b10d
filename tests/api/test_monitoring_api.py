"""Deployments, alert rules and POST /api/monitor through the API, sampled by a real worker."""

import time

import pytest
from sqlalchemy import func, select

from modelport.core.celery_app import get_celery
from modelport.core.db import session_scope
from modelport.core.models import Metric
from modelport.packaging.options import GenerateOptions
from tests.api.test_api_basics import assert_spec_error
from tests.packaging.bundle_servers import BundleServer, facts_for, write_bundle


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.5:8080",
        "http://[::1]:8080",
        "http://user@127.0.0.1:8080",
        "ftp://127.0.0.1/",
        "http://localhost.:8080/?x=1",
        "not a url",
        "http://[8.8.8.8]",  # was a 500 (1012)
        "http://[::1",  # was a 500
        "http://[64:ff9b::7f00:1]:8080",  # NAT64 loopback
        "http://[::7f00:1]:8080",  # IPv4-compatible loopback
    ],
)
def test_refused_deployment_urls(client, url):
    resp = client.post("/api/deployments", json={"modelId": "org/model", "url": url})
    err = assert_spec_error(resp, 400, 1003)
    assert err["message"]


def test_deployment_crud_and_validation(client):
    assert_spec_error(
        client.post("/api/deployments", json={"modelId": "a/b; ls", "url": "http://127.0.0.1"}),
        400,
        1001,
    )
    resp = client.post(
        "/api/deployments",
        json={"modelId": "crud/model", "url": "http://127.0.0.1:9", "labels": {"env": "t"}},
    )
    assert resp.status_code == 201, resp.get_json()
    dep = resp.get_json()
    assert resp.headers["Location"] == f"/api/deployments/{dep['id']}"
    assert client.get(resp.headers["Location"]).get_json()["labels"] == {"env": "t"}
    listed = client.get("/api/deployments?modelId=crud/model").get_json()["deployments"]
    assert [d["id"] for d in listed] == [dep["id"]]
    assert client.delete(resp.headers["Location"]).status_code == 204
    assert_spec_error(client.get(resp.headers["Location"]), 404, 1008)


def test_alert_rule_crud(client):
    client.post("/api/deployments", json={"modelId": "rules/model", "url": "http://127.0.0.1:9"})
    assert_spec_error(
        client.post(
            "/api/alerts", json={"modelId": "rules/model", "kind": "vibes", "threshold": 1}
        ),
        400,
        1003,
    )
    assert_spec_error(
        client.post("/api/alerts", json={"modelId": "none/such", "kind": "memory_pct",
                                          "threshold": 80}),
        404,
        1008,
    )  # fmt: skip
    defaults = client.get("/api/alerts?modelId=rules/model").get_json()["rules"]
    assert {r["kind"] for r in defaults} >= {"p95_latency_ms", "deployment_down"}
    made = client.post(
        "/api/alerts",
        json={"modelId": "rules/model", "kind": "memory_pct", "threshold": 80,
              "severity": "critical", "cooldownSeconds": 60},
    )  # fmt: skip
    assert made.status_code == 201
    rule = made.get_json()
    rules = client.get("/api/alerts?modelId=rules/model").get_json()["rules"]
    assert any(r["id"] == rule["id"] and r["threshold"] == 80 for r in rules)
    assert client.delete(f"/api/alerts/{rule['id']}").status_code == 204
    assert_spec_error(client.delete(f"/api/alerts/{rule['id']}"), 404, 1008)
    assert_spec_error(client.get("/api/alerts"), 400, 1006)
    # found by schemathesis: an id beyond 64 bits was a 500 (SQLite integer overflow)
    assert_spec_error(client.delete("/api/alerts/3678454105041197334528"), 404, 1008)


def test_monitor_request_errors(client):
    assert_spec_error(client.post("/api/monitor", json={"modelId": "never/seen", "days": 7}),
                      404, 1008)  # fmt: skip
    assert_spec_error(client.post("/api/monitor", json={"modelId": "x/y", "days": 0}), 400, 1003)
    assert_spec_error(client.post("/api/monitor", json={"modelId": "x/y", "days": "7"}), 400, 1003)


def metrics_for(model_id: str) -> int:
    with session_scope() as session:
        return session.scalar(
            select(func.count()).where(Metric.model_id == model_id, Metric.source == "deployment")
        )


def test_registered_deployment_is_sampled_and_monitored(client, worker, tiny_models, tmp_path):
    model = tiny_models["text-classification"]
    script = write_bundle(tmp_path / "bundle", facts_for(model), GenerateOptions(batchSize=4))
    server = BundleServer(script)
    server.wait_ready()
    try:
        resp = client.post(
            "/api/deployments",
            json={"modelId": model.repo_id, "url": f"http://127.0.0.1:{server.port}"},
        )
        assert resp.status_code == 201, resp.get_json()
        before = metrics_for(model.repo_id)
        celery = get_celery()
        celery.send_task("monitoring.sample").get(timeout=60)  # baseline scrape
        for _ in range(12):
            assert server.post("/predict", {"inputs": "a fine day"}).status_code == 200
        time.sleep(1.2)  # SAMPLE_INTERVAL_SECONDS=1 in the test environment
        deadline = time.monotonic() + 30
        while metrics_for(model.repo_id) == before and time.monotonic() < deadline:
            celery.send_task("monitoring.sample").get(timeout=60)
            time.sleep(0.3)
        assert metrics_for(model.repo_id) > before
        with session_scope() as session:
            row = session.scalars(
                select(Metric)
                .where(Metric.model_id == model.repo_id, Metric.source == "deployment")
                .where(Metric.throughput > 0)
                .order_by(Metric.id.desc())
            ).first()
        assert row is not None and row.latency > 0 and row.memory_mb > 10

        report = client.post("/api/monitor", json={"modelId": model.repo_id, "days": 1})
        assert report.status_code == 200, report.get_json()
        body = report.get_json()
        assert set(body) >= {"statistics", "plots", "recommendations"}
        stats = body["statistics"]
        assert stats["throughput"]["mean"] > 0
        assert stats["latency"]["trend"] in ("increasing", "decreasing", "stable")
        assert set(stats["costs"]) >= {"mean", "total", "trend"}
        assert set(body["plots"]) == {"performance_over_time", "resource_usage", "cost_analysis"}
        assert body["plots"]["performance_over_time"]["data"]
        filtered = client.post(
            "/api/monitor",
            json={"modelId": model.repo_id, "days": 1, "metrics": ["latency"]},
        ).get_json()
        assert set(filtered["statistics"]) == {"latency"}
    finally:
        server.stop()
