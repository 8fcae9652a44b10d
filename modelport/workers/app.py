"""Worker entry point: `celery -A modelport.workers.app worker -Q default,cpu -E`.

Takes core's Celery app, registers the tasks, and adds worker-only signals: a fresh DB
pool in every forked child, GPU pinning for `-Q gpu` workers (one process per GPU), and the
`control` queue for every other worker, whatever its -Q.
"""

from __future__ import annotations

import logging
import os

from celery.signals import celeryd_after_setup, worker_init, worker_process_init

from modelport.core.celery_app import CONTROL_QUEUE, get_celery
from modelport.core.db import dispose_engines
from modelport.core.redis_client import reset_redis

app = get_celery()
# Registering the tasks is importing them (they are @shared_task, named).
import modelport.tasks.benchmark  # noqa: E402
import modelport.tasks.generate  # noqa: E402
import modelport.tasks.maintenance  # noqa: E402
import modelport.tasks.monitoring  # noqa: E402,F401

log = logging.getLogger(__name__)


@worker_init.connect
def _pin_gpu(**_):
    # A GPU worker serves exactly one device; set before any CUDA call (none in the parent).
    device = os.environ.get("MODELPORT_GPU_DEVICE")
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device
        log.info("GPU worker pinned to CUDA_VISIBLE_DEVICES=%s", device)


@celeryd_after_setup.connect
def _consume_control(sender, instance, **_):
    # Periodic and maintenance tasks must not wait behind a backlog of jobs; a GPU worker
    # keeps its device for benchmarks.
    if os.environ.get("MODELPORT_GPU_DEVICE") is None:
        instance.app.amqp.queues.select_add(CONTROL_QUEUE)


@worker_process_init.connect
def _after_fork(**_):
    dispose_engines()
    reset_redis()
