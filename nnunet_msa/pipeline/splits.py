"""Case splits that keep one patient's cases together (ACDC's frames), seeded and deterministic.

Used by the demo (held-out and validation cases), the benchmarks (training/validation at an equal budget) and the accuracy
protocol (a held-back test set that no training run sees)."""
from __future__ import annotations

import random
import re
from typing import Dict, List, Optional, Sequence, Tuple


def group_of(case: str, pattern: Optional[str]) -> str:
    """The group (patient) of a case: group 1 of the regular expression ``pattern`` matched at the start of the
    identifier (``r"(patient\\d+)_frame"``), or the case itself when ``pattern`` is empty or does not match."""
    if not pattern:
        return case
    match = re.match(pattern, case)
    return match.group(1) if match and match.groups() and match.group(1) else case


def separator_pattern(separator: Optional[str]) -> Optional[str]:
    """The ``group_of`` pattern for "the part before ``separator``" (``"_frame"`` -> ``r"(.+?)_frame"``)."""
    return f"(.+?){re.escape(separator)}" if separator else None


def groups_of(ids: Sequence[str], pattern: Optional[str]) -> Dict[str, List[str]]:
    """{group: its cases (sorted)}, groups sorted by name."""
    groups: Dict[str, List[str]] = {}
    for case in sorted(ids):
        groups.setdefault(group_of(case, pattern), []).append(case)
    return dict(sorted(groups.items()))


def grouped_split(ids: Sequence[str], n_train: int, n_val: int, pattern: Optional[str],
                  seed: int = 0) -> Tuple[List[str], List[str]]:
    """Seeded split into about ``n_val`` validation and ``n_train`` training cases (groups shuffled, then filled
    in turn); cases of one group go to the same side."""
    groups = groups_of(ids, pattern)
    keys = list(groups)
    random.Random(seed).shuffle(keys)
    val: List[str] = []
    train: List[str] = []
    for k in keys:
        if len(val) < n_val:
            val.extend(groups[k])
        elif len(train) < n_train:
            train.extend(groups[k])
    if not train or not val:
        raise ValueError(f"cannot split {len(ids)} cases into {n_train} training and {n_val} validation cases")
    return sorted(train), sorted(val)


def holdout_split(ids: Sequence[str], test_fraction: float, pattern: Optional[str],
                  seed: int) -> Tuple[List[str], List[str]]:
    """(training pool, test set): round(test_fraction · groups) whole groups, drawn by ``seed``, are the test set.

    Deterministic for the same ids, fraction, pattern (see ``group_of``) and seed, whatever order the ids come in."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    groups = groups_of(ids, pattern)
    keys = list(groups)
    random.Random(seed).shuffle(keys)
    n_test = max(1, min(len(keys) - 1, round(test_fraction * len(keys))))
    if len(keys) < 2:
        raise ValueError(f"cannot hold back a test set from {len(ids)} case(s) in {len(keys)} group(s)")
    test = sorted(c for k in keys[:n_test] for c in groups[k])
    pool = sorted(c for k in keys[n_test:] for c in groups[k])
    return pool, test


def pick_groups(ids: Sequence[str], n: int, seed: int, pattern: Optional[str]) -> Tuple[List[str], List[str]]:
    """(picked, rest): whole groups (``group_of``), shuffled by ``seed``, taken until at least ``n`` cases are
    picked (the demo's held-out and validation cases)."""
    groups = groups_of(ids, pattern)
    order = list(groups)
    random.Random(seed).shuffle(order)
    picked: List[str] = []
    while order and len(picked) < n:
        picked += groups[order.pop(0)]
    rest = [c for g in order for c in groups[g]]
    return picked, rest
