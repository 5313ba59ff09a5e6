"""What nnU-Net's training log says: epoch times, losses and pseudo-Dice per epoch."""
from __future__ import annotations

import glob
import os
import re
from typing import List

_EPOCH_TIME = re.compile(r"Epoch time: ([0-9.]+) s")


def epoch_times(path: str) -> List[float]:
    """nnU-Net's ``Epoch time: X s`` values, in order, from one training log or from every
    ``training_log_*.txt`` of a fold folder (a resumed run writes several)."""
    logs = (sorted(glob.glob(os.path.join(path, "training_log_*.txt"))) if os.path.isdir(path) else [path])
    times: List[float] = []
    for log in logs:
        with open(log, errors="replace") as f:
            times += [float(m) for m in _EPOCH_TIME.findall(f.read())]
    return times
