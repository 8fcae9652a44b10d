"""Kubernetes memory quantities ("512Mi", "8Gi", "1.5G", "1000000")."""

from __future__ import annotations

import re

_SUFFIX = {
    "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip
_QUANTITY_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")


def parse_memory(text: str) -> int:
    """Bytes in a Kubernetes memory quantity; ValueError with the accepted form otherwise."""
    if not isinstance(text, str) or len(text) > 32:
        raise ValueError("memory must be a Kubernetes quantity such as 512Mi, 8Gi or 2G")
    match = _QUANTITY_RE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a Kubernetes memory quantity (examples: 512Mi, 8Gi, 2G)")
    value = float(match.group(1)) * _SUFFIX[match.group(2) or ""]
    if value < 1:
        raise ValueError("memory must be at least one byte")
    return int(value)


def format_memory(nbytes: float) -> str:
    """Bytes as the largest binary unit that keeps one decimal meaningful (e.g. 1.5Gi)."""
    for unit, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if nbytes >= size:
            return f"{nbytes / size:.1f}{unit}"
    return f"{int(nbytes)}"
