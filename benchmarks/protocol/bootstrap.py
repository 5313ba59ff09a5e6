"""Paired differences between two trainers on the same test cases, with a bootstrap interval over cases and seeds
(``paired_difference``: the library's, ``nnunet_msa/analysis/paired_bootstrap.py``, which ``nnunet-msa compare`` uses
too), and nnU-Net's scores at another training time (``interpolate_budgets``).

Scores are arrays (seeds, cases): row s holds one training run (seed s), column i one test case, the same cases in
the same order for both trainers. The difference is mean(A) − mean(B) (mean over seeds, then cases). Each bootstrap
replicate draws the cases with replacement (the same draw for A and B: the comparison is paired by case) and, for
each trainer separately, its seeds with replacement (seeds of different networks are not paired: the same seed
number gives unrelated weights), so the interval carries both the case-to-case and the seed-to-seed spread.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


from nnunet_msa.analysis.paired_bootstrap import Difference, paired_difference  # noqa: F401 (the one implementation)


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
