"""Rate limiting of job submissions: 429 in SPEC's format, per key / per address, fail open.

Every submission counts, valid or not (the check runs before the body is parsed), so these
tests submit empty bodies: they are counted without creating or enqueueing jobs.
"""

import logging
import socket

import pytest
from pydantic import ValidationError

from modelport.core import apikeys
from modelport.core.settings import Settings, get_settings, parse_rate

SUBMIT_PATHS = ["/api/generate", "/api/benchmark"]


def make_client(**update):
    from modelport.api import create_app

    settings = get_settings().model_copy(update={"RATE_LIMIT_SUBMISSIONS": "3/hour", **update})
    return create_app(settings).test_client()


def submit(client, path="/api/generate", addr="10.9.8.1", **kwargs):
    return client.post(path, json={}, environ_base={"REMOTE_ADDR": addr}, **kwargs)


def assert_limited(resp):
    assert resp.status_code == 429, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == 1009
    retry = resp.headers["Retry-After"]
    assert retry.isdigit() and 1 <= int(retry) <= 3600
    message = body["error"]["message"]
    assert "3 submissions per hour" in message and f"retry in {retry} seconds" in message
    assert body["error"]["details"]["retryAfter"] == int(retry)


@pytest.mark.parametrize("path", SUBMIT_PATHS)
def test_address_limit_is_429_in_spec_format(platform_env, path):
    client = make_client()
    for _ in range(3):
        resp = submit(client, path, addr="10.9.8.1")
        assert resp.status_code != 429
        assert "Retry-After" not in resp.headers
    assert_limited(submit(client, path, addr="10.9.8.1"))
    assert "client address" in submit(client, path, addr="10.9.8.1").get_json()["error"]["message"]
    # another address has its own budget
    assert submit(client, path, addr="10.9.8.2").status_code != 429


def test_generate_and_benchmark_share_the_budget(platform_env):
    client = make_client()
    for path in ["/api/generate", "/api/benchmark", "/api/generate"]:
        assert submit(client, path, addr="10.9.8.3").status_code != 429
    assert_limited(submit(client, "/api/benchmark", addr="10.9.8.3"))


def test_key_limit_counts_by_key_not_address(platform_env):
    client = make_client()
    key = apikeys.create_key("ratelimit-test")
    auth = {"Authorization": f"Bearer {key.key}"}
    for n in range(3):
        assert submit(client, addr=f"10.9.8.{10 + n}", headers=auth).status_code != 429
    resp = submit(client, addr="10.9.8.13", headers=auth)
    assert_limited(resp)
    assert "API key" in resp.get_json()["error"]["message"]
    # the addresses it came from were not charged, nor is another key
    assert submit(client, addr="10.9.8.10").status_code != 429
    other = apikeys.create_key("ratelimit-other")
    headers = {"Authorization": f"Bearer {other.key}"}
    assert submit(client, addr="10.9.8.13", headers=headers).status_code != 429


def test_polling_and_health_are_never_limited(platform_env):
    client = make_client(RATE_LIMIT_SUBMISSIONS="1/hour")
    assert submit(client, addr="10.9.8.20").status_code != 429
    assert submit(client, addr="10.9.8.20").status_code == 429
    for _ in range(5):
        env = {"REMOTE_ADDR": "10.9.8.20"}
        assert client.get("/api/jobs", environ_base=env).status_code == 200
        assert client.get("/api/jobs/nope", environ_base=env).status_code == 404
        assert client.get("/api/health", environ_base=env).status_code != 429


def test_off_disables_the_limit(platform_env):
    client = make_client(RATE_LIMIT_SUBMISSIONS="off")
    for _ in range(5):
        assert submit(client, addr="10.9.8.30").status_code != 429


def test_forwarded_for_only_with_trusted_proxies(platform_env):
    plain = make_client(RATE_LIMIT_SUBMISSIONS="1/hour")
    # untrusted: X-Forwarded-For is ignored, the peer address is counted
    assert submit(plain, addr="10.9.8.40", headers={"X-Forwarded-For": "1.1.1.1"}).status_code
    resp = submit(plain, addr="10.9.8.40", headers={"X-Forwarded-For": "2.2.2.2"})
    assert resp.status_code == 429
    proxied = make_client(RATE_LIMIT_SUBMISSIONS="1/hour", TRUSTED_PROXIES=1)
    for client_ip in ("10.9.7.1", "10.9.7.2"):
        headers = {"X-Forwarded-For": f"6.6.6.6, {client_ip}"}
        assert submit(proxied, addr="10.9.8.41", headers=headers).status_code != 429
    headers = {"X-Forwarded-For": "10.9.7.1"}
    assert submit(proxied, addr="10.9.8.41", headers=headers).status_code == 429


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_redis_down_fails_open(platform_env, caplog):
    client = make_client(
        RATE_LIMIT_SUBMISSIONS="1/hour", REDIS_URL=f"redis://127.0.0.1:{_closed_port()}"
    )
    with caplog.at_level(logging.WARNING, logger="modelport.api.ratelimit"):
        for _ in range(3):
            resp = submit(client, addr="10.9.8.50")
            assert resp.status_code == 400, resp.get_data(as_text=True)  # the body, not 429
    assert any("failing open" in r.getMessage() for r in caplog.records)


def test_rate_setting_is_parsed_and_validated():
    assert parse_rate("60/minute") == (60, 60)
    assert parse_rate(" 5 / seconds ") == (5, 1)
    assert parse_rate("1000/day") == (1000, 86400)
    assert parse_rate("off") is None
    assert Settings(RATE_LIMIT_SUBMISSIONS="10/hour").submission_rate == (10, 3600)
    assert Settings.model_fields["RATE_LIMIT_SUBMISSIONS"].default == "120/minute"
    for bad in ("", "60", "0/minute", "-1/minute", "60/fortnight", "sixty/minute"):
        with pytest.raises(ValidationError, match="RATE_LIMIT_SUBMISSIONS"):
            Settings(RATE_LIMIT_SUBMISSIONS=bad)
    with pytest.raises(ValidationError, match="TRUSTED_PROXIES"):
        Settings(TRUSTED_PROXIES=-1)
