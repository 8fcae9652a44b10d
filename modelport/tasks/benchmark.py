"""benchmark.run: measure a model on this worker's device and record the results."""

from __future__ import annotations

from celery import shared_task

from modelport.core.celery_app import BENCHMARK_TASK
from modelport.core.errors import BenchmarkFailed
from modelport.tasks.runner import run_job


@shared_task(name=BENCHMARK_TASK, bind=True, acks_late=True)
def benchmark(self, job_id: str) -> str:
    return run_job(self, job_id, _work, BenchmarkFailed)


def _work(params, attempt):
    from modelport.benchmarking.service import benchmark_model, search_model

    work = search_model if params.get("search") else benchmark_model
    return work(params, progress=attempt.progress, job_id=attempt.job_id, outcome=attempt.outcome)
