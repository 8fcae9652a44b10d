"""Cost per inference from the price table in prices.yaml (light: no torch).

cost_per_inference (USD) = hourly price of the resources used / 3600 * seconds per sample,
where seconds per sample = 1 / throughput. The hourly price is `cpu_core_hour` times the cores
given to the benchmark on CPU, or the GPU type's `gpu_hour` on GPU. Overrides, strongest
last: the repo's prices.yaml, the file named by MODELPORT_PRICES (same shape, merged key by
key), then the environment floats PRICE_CPU_CORE_HOUR and PRICE_GPU_HOUR.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PRICES_FILE = Path(__file__).with_name("prices.yaml")
# Matched in order against the device name torch reports ("NVIDIA H100 80GB HBM3", "Tesla T4").
GPU_TYPES = ("H200", "H100", "A100", "A10G", "L4", "T4")


@dataclass(frozen=True)
class HourlyPrice:
    usd_per_hour: float
    basis: str  # how it was priced, for the report: "2 cores x $0.0446/core-hour"


def load_prices(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The price table with the file and environment overrides applied (read on every call)."""
    env = os.environ if environ is None else environ
    prices = _read(PRICES_FILE)
    override = env.get("MODELPORT_PRICES")
    if override:
        extra = _read(Path(override))
        gpu = {**prices.get("gpu_hour", {}), **(extra.pop("gpu_hour", None) or {})}
        prices = {**prices, **extra, "gpu_hour": gpu}
    if env.get("PRICE_CPU_CORE_HOUR"):
        prices["cpu_core_hour"] = _price("PRICE_CPU_CORE_HOUR", env["PRICE_CPU_CORE_HOUR"])
    if env.get("PRICE_GPU_HOUR"):
        value = _price("PRICE_GPU_HOUR", env["PRICE_GPU_HOUR"])
        prices["gpu_hour"] = {"default": value, **dict.fromkeys(prices["gpu_hour"], value)}
    return prices


def gpu_type(device_name: str | None) -> str | None:
    """The price-table GPU type in a device name, or None for one the table does not list."""
    if not device_name:
        return None
    upper = device_name.upper()
    for kind in GPU_TYPES:
        if re.search(rf"(?<![A-Z0-9]){kind}(?![0-9])", upper):
            return kind
    return None


def hourly_price(
    device: str, *, cores: float, gpu_name: str | None = None, prices: dict[str, Any] | None = None
) -> HourlyPrice:
    prices = prices if prices is not None else load_prices()
    if device == "cuda":
        table = prices["gpu_hour"]
        kind = gpu_type(gpu_name)
        if kind and kind in table:
            return HourlyPrice(float(table[kind]), f"1 x {kind} at ${table[kind]}/GPU-hour")
        return HourlyPrice(
            float(table["default"]),
            f"1 x {gpu_name or 'unknown GPU'} at the default ${table['default']}/GPU-hour",
        )
    rate = float(prices["cpu_core_hour"])
    return HourlyPrice(cores * rate, f"{cores:g} cores x ${rate}/core-hour")


def cost_per_inference(throughput: float, price: HourlyPrice) -> float:
    """USD per sample at `throughput` samples/s on resources costing `price` per hour."""
    if not throughput > 0:
        raise ValueError("throughput must be positive")
    return price.usd_per_hour / 3600 / throughput


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read the price table {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("gpu_hour", {}), dict):
        raise ValueError(f"{path}: expected a mapping with cpu_core_hour and gpu_hour")
    for kind, value in (data.get("gpu_hour") or {}).items():
        _price(f"{path}: gpu_hour.{kind}", value)
    if "cpu_core_hour" in data:
        data["cpu_core_hour"] = _price(f"{path}: cpu_core_hour", data["cpu_core_hour"])
    return data


def _price(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number of USD per hour, not {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be a non-negative number of USD per hour")
    return number
