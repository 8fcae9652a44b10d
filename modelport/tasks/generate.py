"""generate.run: resolve the model, render and validate the bundle, cache the answer."""

from __future__ import annotations

from celery import shared_task

from modelport.core.celery_app import GENERATE_TASK
from modelport.core.errors import GenerationFailed
from modelport.tasks.runner import run_job


@shared_task(name=GENERATE_TASK, bind=True, acks_late=True)
def generate(self, job_id: str) -> str:
    return run_job(self, job_id, _work, GenerationFailed)


def _work(params, attempt):
    from modelport.packaging.generate import generate_bundle

    return generate_bundle(params, progress=attempt.progress)
