"""Paired differences between two trainers on the same test cases, with a bootstrap interval over cases and seeds.

Scores are arrays (seeds, cases): row s holds one training run (seed s), column i one test case, the same cases in
the same order for both trainers. The difference is mean(A) − mean(B) (mean over seeds, then cases). Each bootstrap
replicate draws the cases with replacement (the same draw for A and B: the comparison is paired by case) and, for
each trainer separately, its seeds with replacement (seeds of different networks are not paired: the same seed
number gives unrelated weights), so the interval carries both the case-to-case and the seed-to-seed spread.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np


@dataclass(frozen=True)
class Difference:
    """mean(A) − mean(B) and its percentile bootstrap interval."""

    mean: float
    low: float
    high: float
    level: float
    n_cases: int
    n_seeds_a: int
    n_seeds_b: int

    def __str__(self) -> str:
        return f"{self.mean:+.4f} [{self.low:+.4f}, {self.high:+.4f}]"


def _seed_resampled_means(scores: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, cases): per replicate, the mean over a with-replacement draw of the rows (seeds)."""
    s = scores.shape[0]
    rows = rng.integers(0, s, size=(n_boot, s))
    return scores[rows].mean(axis=1)


def paired_difference(a: np.ndarray, b: np.ndarray, n_boot: int = 10000, level: float = 0.95,
                      seed: int = 0) -> Difference:
    """Difference of trainer A's and trainer B's mean score over the same cases, with a ``level`` interval."""
    a, b = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"A has {a.shape[1]} cases, B {b.shape[1]}: pair the same test cases")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("scores must be finite (drop labels absent from both prediction and reference first)")
    n = a.shape[1]
    rng = np.random.default_rng(seed)
    per_case = _seed_resampled_means(a, n_boot, rng) - _seed_resampled_means(b, n_boot, rng)  # (n_boot, n)
    cases = rng.integers(0, n, size=(n_boot, n))
    reps = np.take_along_axis(per_case, cases, axis=1).mean(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(reps, [alpha, 1 - alpha])
    return Difference(float(a.mean() - b.mean()), float(low), float(high), level, n, a.shape[0], b.shape[0])


def interpolate_budgets(times: Sequence[float], scores: Sequence[np.ndarray], at: float) -> Optional[np.ndarray]:
    """Scores (seeds, cases) at training time ``at``, linear between the two budgets around it.

    ``times``: mean training time of each budget; ``scores``: their (seeds, cases) arrays, row s of every budget the
    same seed (give only the seeds all budgets have). Below the shortest budget, that budget's scores (it
    already had more time: conservative for the other trainer); above the longest, None (train a longer budget)."""
    order = np.argsort(times)
    times = [float(times[i]) for i in order]
    scores = [np.atleast_2d(scores[i]) for i in order]
    if at <= times[0]:
        return scores[0]
    if at > times[-1]:
        return None
    j = int(np.searchsorted(times, at))
    t0, t1 = times[j - 1], times[j]
    s0, s1 = scores[j - 1], scores[j]
    if s0.shape != s1.shape:
        raise ValueError(f"budgets with different seeds or cases: {s0.shape} and {s1.shape}")
    w = (at - t0) / (t1 - t0) if t1 > t0 else 1.0
    return s0 + w * (s1 - s0)
