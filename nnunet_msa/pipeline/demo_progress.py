"""The demo's progress while ``nnUNetv2_train`` runs: after each epoch, one line with the trainer, epoch k/N,
nnU-Net's pseudo Dice of that epoch and its moving average (EMA), the epoch's time, and the time left for this
training and for the whole demo, all read from nnU-Net's own output (the lines it also writes to the fold folder's
``training_log_*.txt``)::

    nnUNetTrainer_budget epoch 2/5: pseudo Dice spindle 0.61 blob 0.55 (EMA 0.58), epoch 12.3 s; time left: training ~37 s, demo estimating

The whole demo's time left is only given once it rests on measured times: the epochs of the training under way, and
the time a finished trainer took from its last epoch to its held-out Dice (nnU-Net's final validation, prediction,
scoring). While a trainer that has not run yet is still to come, its epoch time is unknown and the line says
"estimating"."""
from __future__ import annotations

import math
import time
from typing import Dict, List, Optional, Sequence

from nnunet_msa.pipeline.training_log import EpochProgress


def unbuffered(env: Dict[str, str]) -> Dict[str, str]:
    """``env`` with Python's output unbuffered: nnU-Net prints its epoch lines without flushing, so through a pipe
    they would arrive in 8 KB blocks (at the end, for a short training) instead of as each epoch ends."""
    return {**env, "PYTHONUNBUFFERED": "1"}


def plural(n: int, noun: str) -> str:
    """``1 epoch``, ``5 epochs``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 07 min``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def dice_text(values: Sequence[float], names: Sequence[str]) -> str:
    """``spindle 0.61 blob 0.55`` (names when there is one per value, else the values alone)."""
    shown = ["nan" if math.isnan(v) else f"{v:.2f}" for v in values]
    if len(names) != len(shown):
        return " ".join(shown)
    return " ".join(f"{n} {v}" for n, v in zip(names, shown))


class DemoClock:
    """The whole demo's time left, from measured times only (see the module's docstring)."""

    def __init__(self, trainers: Sequence[str]) -> None:
        self.trainers = list(trainers)
        self.tail: Optional[float] = None

    def trainer_finished(self, tail_seconds: Optional[float]) -> None:
        """A trainer is scored; ``tail_seconds``: from its last epoch's end to its held-out Dice."""
        if tail_seconds is not None:
            self.tail = tail_seconds

    def seconds_left(self, index: int, training_left: Optional[float]) -> Optional[float]:
        """Time left in the demo while trainer number ``index`` trains, or None while that is not measurable yet (a
        later trainer still to come, or no trainer finished to time the steps after training)."""
        if index < len(self.trainers) - 1 or self.tail is None or training_left is None:
            return None
        return training_left + self.tail


class TrainingMonitor:
    """Reads one ``nnUNetv2_train``'s output line by line; after each epoch, the demo's progress line."""

    def __init__(self, trainer: str, index: int, epochs: int, label_names: Sequence[str], clock: DemoClock) -> None:
        self.trainer = trainer
        self.index = index
        self.label_names: List[str] = list(label_names)
        self.clock = clock
        self.progress = EpochProgress(epochs)
        self.last_epoch_end: Optional[float] = None

    def feed(self, line: str) -> Optional[str]:
        """Take one line of nnU-Net's output; return the progress line when it closes an epoch."""
        if self.progress.feed(line) is None:
            return None
        self.last_epoch_end = time.time()
        return self.line()

    def line(self) -> str:
        """``TRAINER epoch k/N: pseudo Dice ... (EMA ...), epoch T s; time left: training ~X, demo ~Y``."""
        p = self.progress
        parts = [f"{self.trainer} epoch {p.done}/{p.epochs}:"]
        if p.dice:
            ema = "" if p.ema is None else f" (EMA {'nan' if math.isnan(p.ema) else f'{p.ema:.2f}'})"
            parts.append(f"pseudo Dice {dice_text(p.dice, self.label_names)}{ema},")
        parts.append(f"epoch {p.times[-1]:.1f} s;")
        training_left = p.seconds_left()
        demo_left = self.clock.seconds_left(self.index, training_left)
        parts.append("time left: training " + ("estimating" if training_left is None else f"~{duration(training_left)}")
                     + ", demo " + ("estimating" if demo_left is None else f"~{duration(demo_left)}"))
        return " ".join(parts)

    def seconds_since_last_epoch(self) -> Optional[float]:
        """Time since the last epoch ended (None when none has)."""
        return None if self.last_epoch_end is None else time.time() - self.last_epoch_end
