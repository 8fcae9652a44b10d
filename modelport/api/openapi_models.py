"""Response models for the OpenAPI document (documentation only; routes build plain dicts).

Each mirrors what a route answers; `extra="allow"` where the API adds fields beyond SPEC's.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Open = ConfigDict(extra="allow")


class ErrorDetail(BaseModel):
    model_config = Open

    code: int = Field(..., description="SPEC error code (1001-1012, see the README)")
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(BaseModel):
    """Every error: `{"error": {"code", "message", "details"}}` (a failed job adds `jobId`)."""

    model_config = Open

    error: ErrorDetail


class BundleFiles(BaseModel):
    model_config = Open

    Dockerfile: str
    requirements_txt: str = Field(..., alias="requirements.txt")
    run_inference_py: str = Field(..., alias="run_inference.py")
    module_yaml: str = Field(..., alias="module.yaml")
    README_md: str = Field(..., alias="README.md")


class Validation(BaseModel):
    model_config = Open

    status: Literal["passed", "warnings", "failed"]
    errors: list[Any]
    warnings: list[Any] = Field(default_factory=list)


class GenerateResponse(BaseModel):
    """SPEC's generation result (the job's `result`, or the answer when cached or waited)."""

    model_config = Open

    files: BundleFiles
    validation: Validation


class BenchmarkResults(BaseModel):
    model_config = Open

    throughput: list[float | None]
    latency: list[float | None]
    memory_usage: list[float | None]
    cost_per_inference: list[float | None]


class BenchmarkAnalysis(BaseModel):
    model_config = Open

    optimal_batch_size: int | None
    resource_recommendations: list[str]


class SearchConfiguration(BaseModel):
    """One measured (optimizationLevel, batchSize) of a search."""

    model_config = Open

    optimizationLevel: str
    batchSize: int
    throughput: float
    latencyP95Ms: float
    memoryMb: float | None
    costPerMillion: float | None
    quality: dict[str, Any]
    qualified: bool
    rejectedBecause: list[str]
    pareto: bool
    recommended: bool


class SearchRecommendation(BaseModel):
    model_config = Open

    options: dict[str, Any] = Field(description="the exact options for POST /api/generate")
    meetsRequirements: bool = Field(
        description="false: none qualified, this is the least violating that passed the gate"
    )
    rejectedBecause: list[str]
    throughput: float
    latencyP95Ms: float
    speedupVsDefault: float | None


class BenchmarkSearch(BaseModel):
    """A configuration search's table (request `search: true`); the answer's other fields
    are the recommended level's benchmark."""

    model_config = Open

    levels: list[str]
    objective: dict[str, Any]
    default: dict[str, Any] | None
    configurations: list[SearchConfiguration]
    recommended: SearchRecommendation | None
    sentence: str
    skipped: dict[str, str] = Field(
        default_factory=dict, description="levels that cannot serve this model's task, and why"
    )


class BenchmarkResponse(BaseModel):
    """SPEC's benchmark result; `details`, `reusedBatchSizes` and more are additive."""

    model_config = Open

    results: BenchmarkResults
    analysis: BenchmarkAnalysis
    search: BenchmarkSearch | None = None
    served: dict[str, Any] | None = Field(
        None,
        description="the bundle's own server driven at each requested concurrency "
        "(servedConcurrency): levels[] with throughput, latencyMs, errors; addedP50Ms and "
        "throughputVsInProcess against the in-process figures; maxDelayMs, the batching "
        "delay served; serverMemoryMb and meanBatchSize from the server's own /metrics; "
        "with batchDelaysMs, delays[] (maxDelayMs, levels, bestThroughput, "
        "worstP95Ms, meetsObjective) and delaySentence, the reported delay being the best",
    )


class MonitorResponse(BaseModel):
    """SPEC's monitoring answer; plots are Plotly figure JSON."""

    model_config = Open

    statistics: dict[str, Any]
    plots: dict[str, Any]
    recommendations: list[str]


class Links(BaseModel):
    model_config = Open

    self: str


class Job(BaseModel):
    model_config = Open

    jobId: str
    kind: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    progress: float
    stage: str | None = None
    modelId: str | None = None
    queue: str | None = None
    attempts: int
    maxAttempts: int
    createdAt: str | None = None
    startedAt: str | None = None
    finishedAt: str | None = None
    links: Links
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class JobAccepted(Job):
    """202: the job was recorded and enqueued; poll `links.self` (also in `Location`)."""


class JobList(BaseModel):
    model_config = Open

    jobs: list[Job]
    page: int
    perPage: int
    total: int


class Deployment(BaseModel):
    model_config = Open

    id: str
    modelId: str
    url: str
    name: str | None = None
    labels: dict[str, str]
    active: bool
    status: str
    consecutiveFailures: int
    createdAt: str | None = None
    lastSampledAt: str | None = None
    links: Links


class DeploymentList(BaseModel):
    model_config = Open

    deployments: list[Deployment]
    total: int


class AlertRule(BaseModel):
    model_config = Open

    id: int | None
    modelId: str
    kind: str
    threshold: float
    severity: str
    cooldownSeconds: int
    default: bool


class AlertRuleList(BaseModel):
    model_config = Open

    modelId: str
    rules: list[AlertRule]


class Check(BaseModel):
    model_config = Open

    ok: bool
    error: str | None = None


class Health(BaseModel):
    model_config = Open

    status: Literal["ok", "degraded"]
    database: Check
    redis: Check
    workers: dict[str, list[str]]
    queues: dict[str, int]
    error: ErrorDetail | None = Field(
        None, description="When degraded: SPEC's error (1010) naming what is down"
    )


RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    ErrorBody,
    GenerateResponse,
    BenchmarkResponse,
    MonitorResponse,
    Job,
    JobAccepted,
    JobList,
    Deployment,
    DeploymentList,
    AlertRule,
    AlertRuleList,
    Health,
)
