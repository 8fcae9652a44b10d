"""The Celery app object, shared by the API (which only sends by name) and the workers.

Nothing here imports tasks/ or workers/; `modelport.workers.app` registers the tasks.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from modelport.core.settings import Settings, get_settings

# `control` carries the platform's own short tasks (reconciler, sampling, retention); every
# worker that is not GPU-pinned consumes it besides its -Q queues (modelport/workers/app.py),
# so a backlog of jobs never starves them: Redis workers take queues in turn.
CONTROL_QUEUE = "control"
QUEUES = (CONTROL_QUEUE, "default", "cpu", "gpu")

# Task names are the contract between the API and the workers.
GENERATE_TASK = "generate.run"
BENCHMARK_TASK = "benchmark.run"
RECONCILE_TASK = "jobs.reconcile"

TASK_ROUTES = {
    "generate.*": {"queue": "default"},
    "jobs.*": {"queue": CONTROL_QUEUE},
    "monitoring.*": {"queue": CONTROL_QUEUE},
    # benchmark.run is sent with an explicit queue (cpu or gpu) per job.
    "benchmark.*": {"queue": "cpu"},
}


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    app = Celery("modelport")
    transport = {
        "visibility_timeout": settings.BROKER_VISIBILITY_TIMEOUT,
        "socket_timeout": 10,
        "socket_connect_timeout": 5,
        "retry_on_timeout": True,
        "health_check_interval": 30,
    }
    app.conf.update(
        broker_url=settings.redis_db_url(0),
        result_backend=settings.redis_db_url(1),
        broker_transport_options=transport,
        result_backend_transport_options={"visibility_timeout": settings.BROKER_VISIBILITY_TIMEOUT},
        visibility_timeout=settings.BROKER_VISIBILITY_TIMEOUT,
        broker_connection_retry_on_startup=True,
        # JSON only: nothing a broker client can send is ever unpickled.
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        # A job's message is acknowledged only once it finished; a killed worker's
        # message goes back to the queue, and the job's attempt cap stops poison jobs.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_track_started=True,
        task_soft_time_limit=settings.TASK_SOFT_TIME_LIMIT,
        task_time_limit=settings.TASK_TIME_LIMIT,
        result_expires=settings.RESULT_EXPIRES_DAYS * 86400,
        result_extended=True,
        task_default_queue="default",
        task_queues=[Queue(name) for name in QUEUES],
        task_routes=TASK_ROUTES,
        task_send_sent_event=True,
        worker_send_task_events=True,
        timezone="UTC",
        enable_utc=True,
    )
    from modelport.beat_schedule import build_schedule

    app.conf.beat_schedule = build_schedule(settings)
    return app


_app: Celery | None = None


def get_celery() -> Celery:
    """The process's Celery app, built on first use from the current settings."""
    global _app
    if _app is None:
        _app = make_celery()
    return _app


def reset_celery() -> None:
    global _app
    _app = None


def waiting_messages(queue: str) -> int | None:
    """How many messages wait in `queue` on the broker; None when the broker cannot say."""
    from kombu.exceptions import ChannelError

    try:
        with get_celery().connection_for_write() as conn:
            return conn.default_channel.queue_declare(queue=queue, passive=True).message_count
    except ChannelError:  # Redis drops an empty list's key: the queue "does not exist"
        return 0
    except Exception:
        return None


def workers_by_queue(timeout: float = 1.0) -> dict[str, list[str]]:
    """Which workers consume each queue, asked of the workers (a broadcast; waits `timeout`)."""
    by_queue: dict[str, list[str]] = {q: [] for q in QUEUES}
    try:
        replies = get_celery().control.inspect(timeout=timeout).active_queues() or {}
    except Exception:  # broker down or no reply: nobody is known to consume
        return by_queue
    for worker, queues in replies.items():
        for queue in queues:
            by_queue.setdefault(queue["name"], []).append(worker)
    return by_queue
