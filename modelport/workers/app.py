"""Worker entry point: `celery -A modelport.workers.app worker -Q default,cpu -E`.

Takes core's Celery app, registers the tasks, and adds worker-only signals: a fresh DB
pool in every forked child, and GPU pinning for `-Q gpu` workers (one process per GPU).
"""

from __future__ import annotations

import logging
import os

from celery.signals import worker_init, worker_process_init

from modelport.core.celery_app import get_celery
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


@worker_process_init.connect
def _after_fork(**_):
    dispose_engines()
    reset_redis()
