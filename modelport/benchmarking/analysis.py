"""The optimal batch size and resource recommendations, from measured figures (light: no torch).

Rows are the report's `details` dicts (camelCase; BatchResult objects are accepted too).

Optimal batch size: among batch sizes that ran with status "ok", meet the latency objective
(p95 <= latencySloMs, when given), stayed under the memory limit and are stable, the one with
the highest throughput (ties: the smaller). A smaller batch size within 95% of that throughput
is named in the recommendations as the lower-latency alternative. When none qualifies, the
least-violating
measured one: each requirement's violation is normalised (p95 / SLO - 1; peak / limit - 1;
max(cv / 0.10, (p99 / p50) / 2) - 1, or a token amount when too few iterations were run to
judge) and the smallest sum wins (ties: higher throughput, then smaller batch); the
recommendations then say that no batch size met every requirement.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from modelport.benchmarking.report import STABLE_MAX_CV, STABLE_MAX_TAIL, MiB, format_bytes

NEAR_BEST = 0.95
KNEE_GAIN = 0.10  # the knee: the next batch size adds less than this much throughput
TOKEN_VIOLATION = 1e-6
DEVICE_WORDS = {"cpu": "CPU", "cuda": "GPU"}


@dataclass(frozen=True)
class Choice:
    batch_size: int | None
    qualified: bool  # False: no batch size met every requirement (or none was measured)
    violations: dict[str, float] = field(default_factory=dict)  # the pick's, normalised
    best_throughput: float | None = None


def as_rows(rows: Any) -> list[dict[str, Any]]:
    """Detail dicts from detail dicts, BatchResults, or a report's to_spec() output."""
    if isinstance(rows, dict):
        rows = rows.get("details") or []
    return [row.to_dict() if hasattr(row, "to_dict") else dict(row) for row in rows or []]


def measured(rows: Any) -> list[dict[str, Any]]:
    """Rows with a throughput and latency, by batch size."""
    found = [r for r in as_rows(rows) if r.get("throughput") and r.get("latencyMs")]
    return sorted(found, key=lambda r: r["batchSize"])


def violations(row: dict[str, Any], slo_ms: float | None, limit_bytes: int | None) -> dict:
    lat = row["latencyMs"]
    found: dict[str, float] = {}
    if slo_ms:
        found["latency"] = max(0.0, lat["p95"] / slo_ms - 1)
    memory = 0.0
    if limit_bytes and row.get("peakRssMb") is not None:
        memory = max(0.0, row["peakRssMb"] * MiB / limit_bytes - 1)
    if row.get("status") == "over_memory_limit":
        memory = max(memory, TOKEN_VIOLATION)
    found["memory"] = memory
    tail = lat["p99"] / lat["p50"] / STABLE_MAX_TAIL if lat["p50"] > 0 else 0.0
    spread = max(0.0, lat["cv"] / STABLE_MAX_CV - 1, tail - 1)
    if row.get("stable") is False:
        spread = max(spread, TOKEN_VIOLATION)
    found["stability"] = spread
    return found


def optimal_batch_size(
    rows: Any, slo_ms: float | None = None, memory_limit_bytes: int | None = None
) -> Choice:
    scored = [(r, violations(r, slo_ms, memory_limit_bytes)) for r in measured(rows)]
    if not scored:
        return Choice(None, False)
    ok = [r for r, v in scored if r.get("status") == "ok" and not any(v.values())]
    if ok:
        pick = max(ok, key=lambda r: (r["throughput"], -_size(r)))
        return Choice(pick["batchSize"], True, {}, pick["throughput"])
    row, found = min(
        scored, key=lambda rv: (sum(rv[1].values()), -rv[0]["throughput"], _size(rv[0]))
    )
    best = max(r["throughput"] for r, _ in scored)
    return Choice(row["batchSize"], False, {k: v for k, v in found.items() if v > 0}, best)


def recommendations(
    rows: Any,
    config: Any,
    other_device: Any = None,
    *,
    device: dict[str, Any] | None = None,
    quality: dict[str, Any] | None = None,
) -> list[str]:
    """Specific sentences with numbers; `other_device` is the other device's rows or report.
    A failed quality gate comes first and no batch size is recommended."""
    rows = as_rows(rows)
    ran = measured(rows)
    slo, limit = config.latency_slo_ms, config.max_memory_bytes
    choice = optimal_batch_size(rows, slo, limit)
    out: list[str] = []
    if quality is not None and quality.get("passed") is False:
        out.append(_quality_sentence(config.optimization_level, quality))
    elif choice.batch_size is not None:
        out.append(_choice_sentence(choice, ran, slo, limit))
    if quality is not None and quality.get("passed") is None:
        out.append(
            f"The quality gate against float32 was skipped: {quality['reason']}; run the "
            "bundle's `run_inference.py --self-check` on a machine where both fit."
        )
    out.extend(_curve_sentences(ran, choice))
    out.extend(_memory_sentences(rows, ran, limit))
    unstable = [r for r in ran if r.get("stable") is False]
    if unstable:
        listed = ", ".join(f"{_size(r)} (cv {r['latencyMs']['cv']:.2f})" for r in unstable)
        out.append(
            f"Measurements at batch size {listed} are not stable (cv above {STABLE_MAX_CV:.2f}, "
            f"p99 above {STABLE_MAX_TAIL:g}x p50, or under 3 iterations): rerun with more "
            "iterations or on a quieter worker before relying on them."
        )
    out.extend(_failure_sentences(rows))
    pick = next((r for r in ran if _size(r) == choice.batch_size), None)
    if pick and pick.get("ttftMs") is not None:
        decode = pick.get("decodeTokensPerS")
        rate = f" and decodes {decode:,.0f} tokens/s" if decode else ""
        out.append(
            f"At batch size {_size(pick)} the first token takes {_ms(pick['ttftMs'])}{rate} "
            f"({config.max_new_tokens} new tokens per sample)."
        )
    if other_device is not None:
        sentence = _compare_devices(ran, config.device, other_device, device or {})
        if sentence:
            out.append(sentence)
    return out


def _quality_sentence(level: str, quality: dict[str, Any]) -> str:
    if quality.get("metric") == "error":
        return (
            f"Do not ship optimization level '{level}' on these figures: the quality gate "
            f"against float32 could not run ({quality['error']}), so its outputs are unchecked."
        )
    extra = ""
    if "maxProbabilityDiff" in quality:
        extra = (
            f", largest probability difference {quality['maxProbabilityDiff']:.4g} "
            f"(at most {quality['maxProbabilityDiffThreshold']:g})"
        )
    return (
        f"Do not ship optimization level '{level}' for this model: its outputs fail the quality "
        f"gate against float32 on {quality['inputs']} fixed inputs ({quality['metric']} "
        f"{quality['value']:.4g}, threshold {quality['threshold']:g}{extra}); its figures are "
        "reported but recommend nothing. Benchmark 'standard' or 'none' instead."
    )


def _choice_sentence(choice: Choice, ran: list[dict], slo: float | None, limit: int) -> str:
    row = next(r for r in ran if _size(r) == choice.batch_size)
    if choice.qualified:
        slo_text = f" within the {_ms(slo)} p95 objective" if slo else ""
        requirements = "meet every requirement" if slo else "are stable and fit in memory"
        return (
            f"Batch size {_size(row)} gives the highest throughput of the batch sizes that "
            f"{requirements}: "
            f"{_rate(row['throughput'])} samples/s at p95 {_ms(row['latencyMs']['p95'])}"
            f"{slo_text}.{_near_best(row, ran)}"
        )
    best = choice.best_throughput or row["throughput"]
    share = row["throughput"] / best * 100
    head = (
        f"Batch size {_size(row)} gives {_rate(row['throughput'])} samples/s ({share:.0f}% of "
        f"the best {_rate(best)}) at p95 {_ms(row['latencyMs']['p95'])}"
    )
    parts = []
    v = choice.violations
    if "latency" in v:
        parts.append(f"its p95 is {v['latency'] * 100:.0f}% over the {_ms(slo)} objective")
    if "memory" in v:
        peak = row.get("peakRssMb") or 0
        parts.append(f"its peak memory {_mem(peak * MiB)} is over the {_mem(limit)} limit")
    if "stability" in v:
        parts.append(f"its timings are not stable (cv {row['latencyMs']['cv']:.2f})")
    return (
        "No batch size met every requirement (latency objective, memory limit, stable "
        f"timings); batch size {_size(row)} violates them least: {'; '.join(parts)}. {head}."
    )


def _near_best(pick: dict, ran: list[dict]) -> str:
    """The smallest batch size within 5% of the pick's throughput at a lower p95, if any."""
    closer = [
        r
        for r in ran
        if _size(r) < _size(pick)
        and r.get("status") == "ok"
        and r.get("stable") is not False
        and r["throughput"] >= NEAR_BEST * pick["throughput"]
        and r["latencyMs"]["p95"] < pick["latencyMs"]["p95"]
    ]
    if not closer:
        return ""
    alt = min(closer, key=_size)
    share = alt["throughput"] / pick["throughput"] * 100
    return (
        f" Batch size {_size(alt)} gives {share:.0f}% of that ({_rate(alt['throughput'])} "
        f"samples/s) at p95 {_ms(alt['latencyMs']['p95'])}: the choice when latency matters more."
    )


def _curve_sentences(ran: list[dict], choice: Choice) -> list[str]:
    out = []
    for low, high in itertools.pairwise(ran):
        gain = high["throughput"] / low["throughput"] - 1
        if gain < 0:
            out.append(
                f"Throughput falls past batch size {_size(low)}: batch size {_size(high)} gives "
                f"{-gain * 100:.1f}% less ({_rate(low['throughput'])} -> "
                f"{_rate(high['throughput'])} samples/s)."
            )
            break
        if gain < KNEE_GAIN:
            out.append(
                f"Throughput levels off at batch size {_size(low)}: batch size {_size(high)} adds "
                f"only {gain * 100:.1f}% ({_rate(low['throughput'])} -> "
                f"{_rate(high['throughput'])} samples/s)."
            )
            break
    else:
        if len(ran) > 1:
            low, high = ran[-2], ran[-1]
            gain = high["throughput"] / low["throughput"] - 1
            out.append(
                f"Throughput still grows at the largest batch size measured ({_size(high)}: "
                f"{gain * 100:+.1f}% over {_size(low)}); larger batches may help if latency allows."
            )
    sizes = [_size(r) for r in ran]
    if choice.batch_size in sizes and sizes.index(choice.batch_size) + 1 < len(ran):
        here = ran[sizes.index(choice.batch_size)]
        nxt = ran[sizes.index(choice.batch_size) + 1]
        extra = nxt["latencyMs"]["p95"] - here["latencyMs"]["p95"]
        gain = nxt["throughput"] / here["throughput"] - 1
        out.append(
            f"Going from batch size {_size(here)} to {_size(nxt)} costs {extra:+.1f} ms p95 "
            f"({_ms(here['latencyMs']['p95'])} -> {_ms(nxt['latencyMs']['p95'])}) for "
            f"{gain * 100:+.1f}% throughput."
        )
    return out


def _memory_sentences(rows: list[dict], ran: list[dict], limit: int) -> list[str]:
    peaks = [r for r in rows if r.get("peakRssMb")]
    out = []
    if peaks:
        top = max(peaks, key=lambda r: r["peakRssMb"])
        peak = top["peakRssMb"] * MiB
        if peak <= limit:
            out.append(
                f"Peak memory {_mem(peak)} (batch size {_size(top)}) is {peak / limit * 100:.0f}% "
                f"of the {_mem(limit)} limit (MAX_MEMORY): {_mem(limit - peak)} of headroom."
            )
        else:
            out.append(
                f"Peak memory {_mem(peak)} (batch size {_size(top)}) is over the {_mem(limit)} "
                f"limit (MAX_MEMORY) by {_mem(peak - limit)}: raise MAX_MEMORY or use smaller "
                "batches."
            )
    gpu = [r for r in ran if r.get("cudaMaxAllocatedMb")]
    if gpu:
        top = max(gpu, key=lambda r: r["cudaMaxAllocatedMb"])
        out.append(
            f"GPU memory peaks at {_mem(top['cudaMaxAllocatedMb'] * MiB)} allocated by torch "
            f"(batch size {_size(top)})."
        )
    return out


def _failure_sentences(rows: list[dict]) -> list[str]:
    out = []
    for row in rows:
        status, size = row.get("status"), _size(row)
        if status == "oom":
            out.append(
                f"Batch size {size} ran out of memory and has no figures: {row.get('message')}."
            )
        elif status == "over_memory_limit" and str(row.get("message")).startswith("not run"):
            out.append(f"Batch size {size} was {row.get('message')}.")
        elif status == "over_memory_limit":
            out.append(f"Batch size {size} went over the memory limit: {row.get('message')}.")
        elif status == "error":
            out.append(f"Batch size {size} failed: {row.get('message')}.")
        elif status == "over_objective":
            out.append(f"Batch size {size} was {row.get('message')}.")
    return out


def _compare_devices(ran: list[dict], here: str, other: Any, info: dict) -> str | None:
    there = "cpu" if here == "cuda" else "cuda"
    other_info = (other.get("device") or {}) if isinstance(other, dict) else {}
    mine = _cheapest(ran)
    theirs = _cheapest(as_rows(other))
    if mine is None or theirs is None:
        return None
    costs = {here: (mine, info.get("name")), there: (theirs, other_info.get("name"))}
    (cheap, (row_c, name_c)), (dear, (row_d, name_d)) = sorted(
        costs.items(), key=lambda kv: _per_million(kv[1][0])
    )
    low, high = _per_million(row_c), _per_million(row_d)
    ratio = f"{high / low:.1f}x" if low > 0 else "far"
    name_c = f" on {name_c}" if name_c else ""
    name_d = f" on {name_d}" if name_d else ""
    return (
        f"The {DEVICE_WORDS[cheap]} queue is cheaper: ${low:.4g} per million inferences (batch "
        f"size {_size(row_c)}{name_c}) against ${high:.4g} on the {DEVICE_WORDS[dear]} queue "
        f"(batch size {_size(row_d)}{name_d}), {ratio} less."
    )


def _cheapest(rows: list[dict]) -> dict | None:
    priced = [r for r in rows if r.get("status", "ok") == "ok" and _per_million(r) is not None]
    return min(priced, key=_per_million) if priced else None


def _per_million(row: dict) -> float | None:
    if row.get("costPerMillion") is not None:
        return row["costPerMillion"]
    cost = row.get("costPerInference", row.get("cost_per_inference"))
    return cost * 1e6 if cost is not None else None


def _size(row: dict) -> int:
    return row.get("batchSize", row.get("batch_size"))


def _rate(value: float) -> str:
    return f"{value:,.1f}" if value >= 10 else f"{value:.3g}"


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if value >= 10 else f"{value:.2f} ms"


_mem = format_bytes
