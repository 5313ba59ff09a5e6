"""Paired differences between two trainers on the same cases, with a percentile bootstrap interval: the one
implementation used by ``nnunet-msa compare`` and by the accuracy protocol (``benchmarks/protocol``).

Scores are arrays (runs, cases): row s holds one training run (a seed), column i one case, the same cases in the
same order for both trainers. The difference is mean(A) − mean(B) (mean over runs, then cases). Each replicate
draws the cases with replacement (the same draw for A and B: paired by case) and, for each trainer separately,
its runs with replacement (runs of different networks are not paired), so the interval carries the case-to-case
and the run-to-run spread. With ``blocks`` (e.g. the cross-validation fold of each case: each fold is its own
model), a replicate first draws blocks with replacement, then cases within each drawn block, so the interval also
carries the fold-to-fold spread.
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

    @property
    def verdict(self) -> str:
        """"ahead" (interval above 0), "behind" (below 0) or "no difference shown"."""
        if self.low > 0:
            return "ahead"
        if self.high < 0:
            return "behind"
        return "no difference shown"


def _seed_resampled_means(scores: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, cases): per replicate, the mean over a with-replacement draw of the rows (runs)."""
    s = scores.shape[0]
    rows = rng.integers(0, s, size=(n_boot, s))
    return scores[rows].mean(axis=1)


def _case_draws(n: int, n_boot: int, rng: np.random.Generator, blocks: Optional[Sequence]) -> np.ndarray:
    """(n_boot, n) case indices: plain resampling, or blocks first and cases within the drawn blocks."""
    if blocks is None or len(set(blocks)) < 2:
        return rng.integers(0, n, size=(n_boot, n))
    labels = np.asarray(list(blocks))
    members = [np.flatnonzero(labels == b) for b in sorted(set(labels.tolist()))]
    out = np.empty((n_boot, n), dtype=np.int64)
    for r in range(n_boot):
        drawn = [members[i] for i in rng.integers(0, len(members), size=len(members))]
        idx = np.concatenate([m[rng.integers(0, len(m), size=len(m))] for m in drawn])
        # a replicate of the blocks' sizes: take n of them (blocks of unequal size give more or fewer)
        out[r] = idx[rng.integers(0, len(idx), size=n)] if len(idx) != n else idx
    return out


def paired_difference(a: np.ndarray, b: np.ndarray, n_boot: int = 10000, level: float = 0.95,
                      seed: int = 0, blocks: Optional[Sequence] = None) -> Difference:
    """Difference of trainer A's and trainer B's mean score over the same cases, with a ``level`` interval
    (``blocks``: a block label per case, resampled first; module docstring)."""
    a, b = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"A has {a.shape[1]} cases, B {b.shape[1]}: pair the same test cases")
    if a.shape[1] == 0:
        raise ValueError("no cases to compare")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("scores must be finite (drop labels absent from both prediction and reference first)")
    if blocks is not None and len(blocks) != a.shape[1]:
        raise ValueError(f"{len(blocks)} block labels for {a.shape[1]} cases")
    n = a.shape[1]
    rng = np.random.default_rng(seed)
    per_case = _seed_resampled_means(a, n_boot, rng) - _seed_resampled_means(b, n_boot, rng)  # (n_boot, n)
    cases = _case_draws(n, n_boot, rng, blocks)
    reps = np.take_along_axis(per_case, cases, axis=1).mean(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(reps, [alpha, 1 - alpha])
    return Difference(float(a.mean() - b.mean()), float(low), float(high), level, n, a.shape[0], b.shape[0])
