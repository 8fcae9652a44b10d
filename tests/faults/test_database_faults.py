"""The database goes away for a while: SQLite locked by another writer, PostgreSQL unreachable
(its connections cut by a proxy). The API answers a quick 503 in SPEC's format for what needs
the database instead of hanging; jobs caught mid-way resume and finish once, after."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
import time
import uuid
from collections import Counter

import pytest
import requests
from sqlalchemy import select

from modelport.core.db import session_scope
from modelport.core.models import Metric
from tests.fixtures.services import PG_URL, postgres_reachable
from tests.fixtures.stack import unavailable

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

BATCH_SIZES = [1, 2, 4]
DB_TIMEOUT = 2  # DB_TIMEOUT_SECONDS of the stack: how long a request waits for the database
OUTAGE_SECONDS = 10  # longer than a job's lease (4 s), so leases run out during it


def start_with_work_in_flight(stack_factory, tiny_models, **env):
    """A stack with a worker, two benchmarks and six generations submitted, one benchmark
    mid-sweep. Returns (stack, worker, job ids, a model generations can use)."""
    stack = stack_factory(DB_TIMEOUT_SECONDS=str(DB_TIMEOUT), **env)
    worker = stack.worker("w", queues="default,cpu")
    stack.wait_workers("cpu")
    bench_model = tiny_models["text-classification"].repo_id
    gen_model = tiny_models["fill-mask"].repo_id
    ids = [stack.submit_benchmark(bench_model, BATCH_SIZES, 300 + i) for i in range(2)]
    ids += [stack.submit_generate(gen_model, size) for size in range(1, 7)]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = stack.jobs(ids)
        if any(j.kind == "benchmark" and (j.progress or 0) > 0.1 for j in rows.values()):
            return stack, worker, ids, gen_model
        time.sleep(0.05)
    pytest.fail("no benchmark reached its sweep")


def probe(stack, job_id: str, model: str, seconds: float) -> list[tuple[str, int, float, dict]]:
    """Call read and write routes for `seconds`; every answer with its time."""
    calls = {
        "GET /api/jobs/<id>": lambda n: stack.get(f"/api/jobs/{job_id}", timeout=60),
        "POST /api/generate": lambda n: stack.post(
            "/api/generate",
            json={"modelUrl": model, "options": {"batchSize": 200 + n}},
            timeout=60,
        ),
        "GET /api/health": lambda n: stack.get("/api/health", timeout=60),
    }
    answers = []
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        for name, call in calls.items():
            started = time.monotonic()
            try:
                resp = call(n)
                status, body = resp.status_code, resp.json()
                if status == 503:
                    assert resp.headers.get("Retry-After"), name
            except (requests.RequestException, ValueError) as exc:
                status, body = -1, {"exception": repr(exc)}
            answers.append((name, status, time.monotonic() - started, body))
        n += 1
    return answers


def check_answers(answers) -> Counter:
    seen = Counter((name, status) for name, status, *_ in answers)
    for name, status, elapsed, body in answers:
        assert status in (200, 202, 503), (name, status, body)
        # a clear answer, not a hang: the wait for the database is bounded by DB_TIMEOUT
        assert elapsed < DB_TIMEOUT + 8, (name, elapsed)
        if status == 503:
            assert "database" in unavailable(body)["message"], body
    assert seen[("POST /api/generate", 503)] >= 1, seen
    return seen


def check_all_finish_once(stack, ids, worker) -> None:
    # the outage reached the jobs, not only the API
    caught = ("lease renewal failed", "database unavailable at claim", "lost the database")
    assert any(what in worker.output() for what in caught), worker.output()[-3000:]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        rows = stack.jobs(ids)
        if all(j.status in ("succeeded", "failed", "cancelled") for j in rows.values()):
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"jobs did not resume: {worker.output()[-4000:]}")
    rows = stack.jobs(ids)
    assert {j.id: j.status for j in rows.values()} == dict.fromkeys(ids, "succeeded"), {
        j.id: j.error for j in rows.values()
    }
    assert all(1 <= j.attempts <= j.max_attempts for j in rows.values())
    benchmarks = [j.id for j in rows.values() if j.kind == "benchmark"]
    with session_scope(stack.db_url) as session:
        metrics = Counter(
            (m.job_id, m.batch_size)
            for m in session.scalars(select(Metric).where(Metric.job_id.in_(benchmarks)))
        )
    assert metrics == Counter({(j, size): 1 for j in benchmarks for size in BATCH_SIZES})


def test_sqlite_locked_by_another_writer(stack_factory, tiny_models):
    stack, worker, ids, gen_model = start_with_work_in_flight(stack_factory, tiny_models)

    # another process takes the write lock and sits on it (a long migration, a stuck tool)
    path = stack.db_url.removeprefix("sqlite:///")
    locker = sqlite3.connect(path, timeout=30, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        answers = probe(stack, ids[0], gen_model, OUTAGE_SECONDS)
    finally:
        locker.execute("ROLLBACK")
        locker.close()

    seen = check_answers(answers)
    # WAL: readers are not blocked by a writer, so polling a job keeps working
    assert seen[("GET /api/jobs/<id>", 200)] >= 1, seen
    print(f"answers while locked: {sorted(seen.items())}")
    check_all_finish_once(stack, ids, worker)


class Proxy:
    """A TCP proxy in front of PostgreSQL that can cut every connection and refuse new ones."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = self._free_port()
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.up()

    @staticmethod
    def _free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """Refuse new connections and reset the open ones, as a crashed server would."""
        assert self.listener is not None
        # shutdown wakes the thread blocked in accept(); close alone would leave it listening
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.listener = None
        with self.lock:
            for conn in self.conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                    conn.close()
            self.conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()


@pytest.fixture()
def pg_database():
    """A fresh PostgreSQL database for one stack, dropped after."""
    if not postgres_reachable():
        pytest.skip("PostgreSQL is not reachable at MODELPORT_TEST_POSTGRES_URL")
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"modelport_faults_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(PG_URL, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    yield make_url(PG_URL).set(database=name)
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def test_postgres_unreachable_for_a_while(pg_database, stack_factory, tiny_models):
    proxy = Proxy((pg_database.host or "127.0.0.1", pg_database.port or 5432))
    url = pg_database.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    stack, worker, ids, gen_model = start_with_work_in_flight(
        stack_factory, tiny_models, db_url=url
    )

    proxy.down()
    try:
        answers = probe(stack, ids[0], gen_model, OUTAGE_SECONDS)
    finally:
        proxy.up()

    seen = check_answers(answers)
    assert seen[("GET /api/jobs/<id>", 503)] >= 1, seen  # no database, no job status
    assert seen[("GET /api/health", 503)] >= 1, seen
    print(f"answers while unreachable: {sorted(seen.items())}")
    check_all_finish_once(stack, ids, worker)
