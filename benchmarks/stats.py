"""Medians, spreads and MSA2/nnU-Net ratios of repeated measurements."""
from __future__ import annotations

import math
import statistics
from typing import Any, Dict, Optional, Sequence


def summarize(values: Sequence[float]) -> Dict[str, Any]:
    """Median, min, max and the raw values."""
    vals = [float(v) for v in values]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0, "values": []}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals), "values": vals}


def ratio(numerator: Optional[float], denominator: Optional[float]) -> Optional[float]:
    """numerator / denominator, or None when either is missing or the denominator is not positive."""
    if numerator is None or denominator is None:
        return None
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator <= 0:
        return None
    return float(numerator) / float(denominator)


def paired_ratios(msa2: Sequence[float], baseline: Sequence[float]) -> Dict[str, Any]:
    """Ratio of the medians, plus min/max over the interleaved pairs (repeat i of MSA2 / repeat i of nnU-Net)."""
    pairs = [ratio(a, b) for a, b in zip(msa2, baseline)]
    pairs = [p for p in pairs if p is not None]
    med = ratio(summarize(msa2)["median"], summarize(baseline)["median"])
    return {"ratio": med, "pair_min": min(pairs) if pairs else None, "pair_max": max(pairs) if pairs else None,
            "pairs": len(pairs)}
