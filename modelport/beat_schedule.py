"""The periodic schedule, as data: task name, interval, options.

Exactly one beat process runs it (see Procfile). Entries expire before the next run so a
backlog never piles up duplicate periodic work. Every entry is sent with ``periodic=True``: the
task then takes a per-interval Redis lock (modelport/core/periodic.py), so a second beat started
by mistake makes duplicate sends, never duplicate runs.
"""

from __future__ import annotations

from modelport.core.celery_app import CONTROL_QUEUE
from modelport.core.settings import Settings

SCHEDULE = [
    {
        "name": "reconcile-jobs",
        "task": "jobs.reconcile",
        "every": "RECONCILE_INTERVAL",  # seconds, from settings
    },
    {
        "name": "sample-deployments",
        "task": "monitoring.sample",
        "every": "SAMPLE_INTERVAL_SECONDS",
    },
    {
        "name": "metrics-retention",
        "task": "monitoring.retention",
        "every": "RETENTION_INTERVAL_SECONDS",  # daily by default
    },
]


def build_schedule(settings: Settings) -> dict:
    schedule = {}
    for entry in SCHEDULE:
        every = float(getattr(settings, entry["every"]))
        schedule[entry["name"]] = {
            "task": entry["task"],
            "schedule": every,
            "kwargs": {"periodic": True},
            "options": {"expires": max(every * 0.9, 1.0), "queue": CONTROL_QUEUE},
        }
    return schedule
