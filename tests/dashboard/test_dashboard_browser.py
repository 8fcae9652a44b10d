"""The dashboard end to end in headless Chromium: the real app, a real worker, real jobs.

Debian's `chromium` (see .ci/install-browser) driven by the `playwright` package; no browser is
ever downloaded. Screenshots land in test-artifacts/dashboard/.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
JOB_TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: run .ci/install-browser (apt-get install chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is missing: pip install -e '.[dev]'"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def base_url(platform_env, worker):
    """The real app on a free loopback port (not in ALLOWED_ORIGINS: its page is same-origin)."""
    from modelport.api import create_app

    app = create_app()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    origin = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield origin
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture()
def page(browser, base_url, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{base_url}/dashboard")
    yield page
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert errors == [], errors


def test_serves_the_page_and_plotly_locally(base_url):
    import requests

    index = requests.get(f"{base_url}/", timeout=5)
    assert index.status_code == 200 and "modelport dashboard" in index.text
    assert "cdn" not in index.text.lower()
    plotly = requests.get(f"{base_url}/static/vendor/plotly.min.js", timeout=5)
    assert plotly.status_code == 200
    assert plotly.headers["Content-Type"].startswith("text/javascript")
    assert "max-age=" in plotly.headers["Cache-Control"]
    assert requests.get(f"{base_url}/static/dashboard.js", timeout=5).status_code == 200


def test_generate_shows_the_files(page, tiny_models):
    model = tiny_models["text-classification"]
    page.fill("#generate-form [name=modelUrl]", f"https://huggingface.co/{model.repo_id}")
    page.fill("#generate-form [name=batchSize]", "4")
    page.click("#generate-form button")
    page.wait_for_selector("#generate-result:not([hidden])", timeout=JOB_TIMEOUT_MS)
    assert page.is_hidden("#generate-error")
    assert page.text_content("#validation-status") in ("passed", "warnings")
    tabs = page.locator("#file-tabs .tab").all_text_contents()
    assert {"Dockerfile", "requirements.txt", "run_inference.py", "module.yaml"} <= set(tabs)
    assert page.text_content("#file-content").lstrip().startswith(("#", "FROM", "ARG"))
    assert "FROM " in page.text_content("#file-content")
    page.click("#file-tabs .tab[data-name='requirements.txt']")
    assert "torch==" in page.text_content("#file-content")


def fill_benchmark(page, model_id: str, **fields: str) -> None:
    """The benchmark form: batch sizes 1 and 2 on the CPU, plus `fields` by input name."""
    form = "#benchmark-form"
    for name, value in {"modelId": model_id, "batchSizes": "1,2", **fields}.items():
        page.fill(f"{form} [name={name}]", value)
    page.select_option(f"{form} [name=device]", "cpu")


def test_benchmark_draws_the_charts(page, tiny_models):
    model = tiny_models["text-classification"]
    fill_benchmark(page, model.repo_id, iterations="2", warmup="0", sequenceLength="16",
                   servedConcurrency="1, 2", batchDelaysMs="0, 10")  # fmt: skip
    page.click("#benchmark-form button")
    page.wait_for_selector("#benchmark-result:not([hidden])", timeout=JOB_TIMEOUT_MS)
    for chart in ("throughput", "latency", "memory", "cost"):
        page.wait_for_selector(f"#chart-{chart} .main-svg", timeout=10_000)
    served = page.locator("#served-table tbody tr")
    assert served.count() == 2
    assert [served.nth(i).locator("td").nth(0).text_content() for i in range(2)] == ["1", "2"]
    assert all(served.nth(i).locator("td").nth(2).text_content() == "0" for i in range(2))
    assert "adds" in page.text_content("#served-summary")
    delays = page.locator("#delays-table tbody tr")  # one server per batching delay
    assert delays.count() == 2
    assert [delays.nth(i).locator("td").nth(0).text_content() for i in range(2)] == ["0", "10"]
    chosen = page.locator("#delays-table tr.recommended td").nth(0).text_content()
    assert f"batching delay {chosen} ms" in page.text_content("#served-summary")
    assert page.text_content("#delay-sentence").startswith(f"batching delay {chosen} ms")
    assert page.text_content("#optimal-batch") in ("1", "2")
    assert page.locator("#benchmark-recommendations li").count() >= 1


def test_a_search_shows_its_table_and_generates_the_pick(page, minilm):
    """Search levels: the table (one row per level and batch size, the quality gate's
    verdict, why a row was rejected) and "Generate this" building the recommended bundle."""
    import yaml

    fill_benchmark(page, minilm.repo_id, iterations="20", warmup="2", sequenceLength="8")
    page.check("#benchmark-form [name=search]")
    page.click("#benchmark-form button")
    page.wait_for_selector("#search-result:not([hidden])", timeout=JOB_TIMEOUT_MS * 2)
    rows = page.locator("#search-table tbody tr")
    assert rows.count() == 12  # none standard bfloat16 aggressive onnxruntime openvino x b1, b2
    levels = [rows.nth(i).locator("td").nth(1).text_content() for i in range(12)]
    assert sorted(set(levels)) == [
        "aggressive", "bfloat16", "none", "onnxruntime", "openvino", "standard",
    ]  # fmt: skip
    gated = page.locator("#search-table td.fail").all_text_contents()
    assert len(gated) == 2 and all(t.startswith("FAILED: min_cosine 0.9") for t in gated)
    assert page.locator("#search-table td", has_text="float32 reference").count() == 2
    sentence = page.text_content("#search-sentence")
    page.set_viewport_size({"width": 1280, "height": 900})
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280  # the table scrolls
    recommended = page.locator("#search-table tr.recommended")
    assert recommended.count() == 1
    level = recommended.locator("td").nth(1).text_content()
    size = int(recommended.locator("td").nth(2).text_content())
    assert f"optimization level '{level}' at batch size {size}" in sentence
    assert "FAILED" not in recommended.text_content()  # never one that failed the gate
    page.click("#generate-this")
    page.wait_for_selector("#generate-result:not([hidden])", timeout=JOB_TIMEOUT_MS)
    page.click("#file-tabs .tab[data-name='module.yaml']")
    module = yaml.safe_load(page.text_content("#file-content"))
    assert module["optimization"]["level"] == level
    assert module["batching"]["maxBatchSize"] == size
    assert module["benchmark"]["jobId"] == page.text_content("#benchmark-job .job-id")[4:]


def test_monitoring_plots_and_live_alerts(page):
    from modelport.core.events import publish
    from modelport.monitoring.demo import load_demo_history

    model_id = "demo/dashboard-model"
    load_demo_history(model_id, 2)
    page.fill("#monitor-form [name=modelId]", model_id)
    page.fill("#monitor-form [name=days]", "2")
    page.click("#monitor-form button")
    for name in ("performance_over_time", "resource_usage", "cost_analysis"):
        page.wait_for_selector(f"#plot-{name} .main-svg", timeout=15_000)
    assert page.locator("#monitor-stats tbody tr").count() == 4
    assert page.locator("#monitor-recommendations li").count() >= 1

    page.wait_for_selector(f"#alerts[data-subscribed='{model_id}']", timeout=10_000)
    alert = {
        "modelId": model_id,
        "type": "p95_latency_ms",
        "message": "p95 latency 12,345 ms is above 10,000 ms <script>x</script>",
        "severity": "critical",
    }
    publish(f"modelport:model:{model_id}", "alert", alert)
    item = page.wait_for_selector("#alerts li.alert.critical", timeout=10_000)
    assert "<script>x</script>" in item.text_content()  # shown as text, never as markup
    assert page.locator("#alerts script").count() == 0
