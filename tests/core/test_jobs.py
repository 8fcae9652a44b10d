"""Job transitions are conditional: one attempt owns a job, finished jobs never rerun."""

import json
import os
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update

from modelport.core import jobs
from modelport.core.db import session_scope
from modelport.core.models import Job, utcnow
from tests.core.test_storage import database_url  # noqa: F401 - parametrized fixture
from tests.fixtures.services import migrate, reset_process_state


@pytest.fixture()
def jobs_db(platform_env, database_url):  # noqa: F811
    saved = os.environ["DB_PATH"]
    os.environ["DB_PATH"] = database_url
    reset_process_state()
    migrate(database_url)
    yield database_url
    os.environ["DB_PATH"] = saved
    reset_process_state()


def make_job(kind="generate") -> str:
    with session_scope() as session:
        job = jobs.new_job(
            session, kind=kind, task_name="generate.run", queue="default", params={"x": 1}
        )
        return job.id


def load(job_id) -> Job:
    with session_scope() as session:
        return session.get(Job, job_id)


def test_one_attempt_owns_a_job(jobs_db):
    job_id = make_job()
    first = jobs.claim(job_id)
    assert first.outcome == "claimed" and first.job.attempts == 1
    second = jobs.claim(job_id)
    assert second.outcome == "busy" and 0 < second.retry_in <= 5
    # only the owner's token can report or finish
    assert not jobs.report_progress(job_id, "not-the-owner", 0.5, "x")
    assert not jobs.succeed(job_id, "not-the-owner", {"r": 1})
    assert jobs.report_progress(job_id, first.token, 0.5, "halfway")
    assert jobs.heartbeat(job_id, first.token)
    assert jobs.succeed(job_id, first.token, {"r": 1})
    # a redelivered message after success does nothing
    assert jobs.claim(job_id).outcome == "finished"
    assert not jobs.succeed(job_id, first.token, {"r": 2})
    row = load(job_id)
    assert row.status == "succeeded" and row.result == {"r": 1} and row.attempts == 1
    assert row.progress == 1.0 and row.finished_at is not None


def test_expired_lease_lets_the_next_attempt_take_over(jobs_db):
    job_id = make_job()
    first = jobs.claim(job_id)
    with session_scope() as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow() - timedelta(1))
        )
    second = jobs.claim(job_id)
    assert second.outcome == "claimed" and second.job.attempts == 2
    # the first attempt lost ownership: it can neither renew nor finish
    assert not jobs.heartbeat(job_id, first.token)
    assert not jobs.succeed(job_id, first.token, {"late": True})
    assert jobs.succeed(job_id, second.token, {"ok": True})
    assert load(job_id).result == {"ok": True}


def test_attempts_are_capped(jobs_db):
    job_id = make_job(kind="benchmark")
    for _ in range(3):
        claim = jobs.claim(job_id)
        assert claim.outcome == "claimed"
        with session_scope() as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(lease_expires_at=utcnow() - timedelta(seconds=1))
            )
    assert jobs.claim(job_id).outcome == "exhausted"
    row = load(job_id)
    assert row.status == "failed" and row.attempts == 3
    assert row.error["code"] == 1004 and "3 times" in row.error["message"]


def test_cancel_only_unfinished_jobs(jobs_db):
    queued = make_job()
    assert jobs.cancel(queued)
    assert load(queued).status == "cancelled"
    assert jobs.claim(queued).outcome == "finished"
    assert not jobs.cancel(queued)


def test_reconcile_requeues_lost_and_expired_jobs(jobs_db):
    never_sent = make_job()
    running = make_job()
    claim = jobs.claim(running)
    past = utcnow() - timedelta(seconds=30)
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == never_sent).values(created_at=past))
        session.execute(update(Job).where(Job.id == running).values(lease_expires_at=past))
    counts = jobs.reconcile()
    assert counts == {"requeued": 1, "expired": 1, "failed": 0, "waiting": 0, "announced": 0}
    sent = load(never_sent)
    assert sent.status == "queued" and sent.enqueues == 1 and sent.enqueued_at is not None
    back = load(running)
    assert back.status == "queued" and back.worker is None
    assert not jobs.succeed(running, claim.token, {"late": True})
    # nothing left to do on a second pass
    assert jobs.reconcile() == {
        "requeued": 0,
        "expired": 0,
        "failed": 0,
        "waiting": 0,
        "announced": 0,
    }


def test_reconcile_leaves_a_job_whose_queue_has_a_backlog(jobs_db):
    """A job sent long ago and still queued is re-sent only once its queue has drained."""
    from modelport.core.celery_app import get_celery, waiting_messages

    queue = f"backlog-{uuid.uuid4().hex[:8]}"  # a queue no worker consumes
    job_id = make_job()
    past = utcnow() - timedelta(hours=1)
    with session_scope() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(queue=queue, enqueued_at=past, enqueues=1, created_at=past)
        )
    celery = get_celery()
    try:
        for _ in range(3):  # other jobs' messages, waiting
            celery.send_task("jobs.ping", queue=queue, ignore_result=True)
        assert waiting_messages(queue) == 3
        # (other tests' jobs may be reconciled too: judge this job by its own row)
        assert jobs.reconcile()["waiting"] >= 1
        assert load(job_id).enqueues == 1
        with celery.connection_for_write() as conn:
            conn.default_channel.queue_purge(queue)
        assert waiting_messages(queue) == 0
        assert jobs.reconcile()["requeued"] >= 1
        assert load(job_id).enqueues == 2 and waiting_messages(queue) == 1
    finally:
        with celery.connection_for_write() as conn:
            conn.default_channel.queue_purge(queue)


def completions(job_id) -> list[dict]:
    from modelport.core import events
    from modelport.core.redis_client import get_redis

    found = []
    for _id, fields in get_redis().xrange(events.STREAM, "-", "+"):
        message = json.loads(fields["message"])
        if message["event"] == "job_completed" and message["data"]["jobId"] == job_id:
            found.append(message["data"])
    return found


def test_a_final_event_lost_to_a_kill_is_announced_once_by_reconcile(jobs_db):
    """The finishing process commits, then publishes, then notes it: killed after the commit,
    the job has no job_completed until reconcile sends it; killed after the publish, reconcile
    notes it without a second event."""
    killed_before_publish, killed_before_note, announced = make_job(), make_job(), make_job()
    claim = jobs.claim(announced)
    assert jobs.succeed(announced, claim.token, {"r": 3})
    assert load(announced).notified_at is not None and len(completions(announced)) == 1
    past = utcnow() - timedelta(seconds=10)
    for job_id in (killed_before_publish, killed_before_note):
        with session_scope() as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(status="succeeded", result={"r": 1}, finished_at=past)
            )
    from modelport.core import events

    data = {"status": "succeeded", "result": {"r": 1}, "error": None}
    assert events.publish_job_once(killed_before_note, "job_completed", data)
    assert completions(killed_before_publish) == []
    assert jobs.reconcile()["announced"] >= 2
    for job_id in (killed_before_publish, killed_before_note):
        assert completions(job_id) == [{"jobId": job_id, **data}]
        assert load(job_id).notified_at is not None
    assert len(completions(announced)) == 1
    assert jobs.reconcile()["announced"] == 0


def test_a_jobs_rows_are_written_with_its_success_or_not_at_all(jobs_db):
    from sqlalchemy import func, select

    from modelport.core.models import Event
    from modelport.core.records import Outcome, add_event
    from modelport.core.registry import upsert_model

    upsert_model({"id": "m/x"})

    def outcome_of(label: str, after: list) -> Outcome:
        outcome = Outcome()
        outcome.write(lambda s: add_event("m/x", "benchmark_completed", label, session=s))
        outcome.then(lambda: after.append(label))
        return outcome

    def events_with(label: str) -> int:
        with session_scope() as session:
            return session.scalar(
                select(func.count()).select_from(Event).where(Event.description == label)
            )

    job_id = make_job("benchmark")
    first = jobs.claim(job_id)
    with session_scope() as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow() - timedelta(1))
        )
    second = jobs.claim(job_id)
    after: list[str] = []
    # the superseded attempt finishes late: neither its rows nor its cache step happen
    assert not jobs.succeed(job_id, first.token, {"r": 1}, outcome_of("first", after))
    assert events_with("first") == 0 and after == []
    assert jobs.succeed(job_id, second.token, {"r": 2}, outcome_of("second", after))
    assert events_with("second") == 1 and after == ["second"]


def test_a_released_job_is_claimable_again_and_keeps_its_attempt_count(jobs_db):
    job_id = make_job()
    first = jobs.claim(job_id)
    assert not jobs.release(job_id, "not-the-owner")
    assert jobs.release(job_id, first.token)
    row = load(job_id)
    assert row.status == "queued" and row.worker is None and row.attempts == 1
    second = jobs.claim(job_id)
    assert second.outcome == "claimed" and second.job.attempts == 2
    assert not jobs.succeed(job_id, first.token, {"late": True})
