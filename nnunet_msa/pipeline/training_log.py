"""What nnU-Net's training log says: epoch times, losses and pseudo-Dice per epoch."""
from __future__ import annotations

import glob
import math
import os
import re
from typing import Dict, List, Optional

_EPOCH_TIME = re.compile(r"Epoch time: ([0-9.]+) s")
_EPOCH = re.compile(r": Epoch (\d+)\s*$")
_LOSS = re.compile(r": train_loss (-?[0-9.eE+-]+)")
_DICE = re.compile(r": Pseudo dice \[(.*)\]")
_WRAPPER = re.compile(r"^np\.float\d+\(|\)$")


def _log_order(path: str) -> List[int]:
    """Sort key of ``training_log_Y_M_D_h_m_s.txt`` (nnU-Net does not zero-pad the month and day)."""
    return [int(n) for n in re.findall(r"\d+", os.path.basename(path))]


def epoch_times(path: str) -> List[float]:
    """nnU-Net's ``Epoch time: X s`` values, one per epoch in epoch order, from one training log or from every
    ``training_log_*.txt`` of a fold folder (a resumed run writes several). An epoch logged twice (a run stopped
    after logging an epoch but before its checkpoint, then resumed with ``--c``, trains that epoch again) counts
    once, with its later time."""
    logs = (sorted(glob.glob(os.path.join(path, "training_log_*.txt")), key=_log_order) if os.path.isdir(path)
            else [path])
    by_epoch: Dict[int, float] = {}
    unnumbered: List[float] = []
    for log in logs:
        epoch: Optional[int] = None
        with open(log, errors="replace") as f:
            for line in f:
                if (m := _EPOCH.search(line)) is not None:
                    epoch = int(m.group(1))
                elif (m := _EPOCH_TIME.search(line)) is not None:
                    if epoch is None:
                        unnumbered.append(float(m.group(1)))
                    else:
                        by_epoch[epoch] = float(m.group(1))
                        epoch = None
    return [by_epoch[e] for e in sorted(by_epoch)] + unnumbered


def pseudo_dice(line: str) -> Optional[List[float]]:
    """The values of a ``Pseudo dice [...]`` line (plain floats or ``np.float32(...)``), None for other lines."""
    match = _DICE.search(line)
    if not match:
        return None
    values = []
    for token in match.group(1).split(","):
        token = _WRAPPER.sub("", token.strip())
        try:
            values.append(float(token))
        except ValueError:
            return None
    return values


class EpochProgress:
    """Follows nnU-Net's training output (or its ``training_log_*.txt``) line by line; after each epoch, a one-line
    summary with the time left:

        epoch 3/5: train loss -0.412, pseudo-Dice 0.61 0.55, 12.3 s/epoch, about 25 s left

    and, for other summaries, what it has read so far: the epoch, its loss and pseudo Dice, nnU-Net's EMA of the mean
    foreground pseudo Dice (the value nnU-Net keeps its best checkpoint by), the epoch times, the time left."""

    def __init__(self, epochs: Optional[int] = None) -> None:
        self.epochs = epochs
        self.epoch: Optional[int] = None
        self.loss: Optional[float] = None
        self.dice: Optional[List[float]] = None
        self.ema: Optional[float] = None
        self.times: List[float] = []

    def feed(self, line: str) -> Optional[str]:
        """Take one line of output; return the summary when the line closes an epoch."""
        if (m := _EPOCH.search(line)) is not None:
            self.epoch, self.loss, self.dice = int(m.group(1)), None, None
        elif (m := _LOSS.search(line)) is not None:
            self.loss = float(m.group(1))
        elif (d := pseudo_dice(line)) is not None:
            self.dice = d
            self.ema = next_ema(self.ema, d)
        elif (m := _EPOCH_TIME.search(line)) is not None:
            self.times.append(float(m.group(1)))
            return self.summary()
        return None

    @property
    def done(self) -> int:
        """Epochs finished so far (nnU-Net counts from 0; this is the last finished epoch's number + 1)."""
        return (self.epoch if self.epoch is not None else len(self.times) - 1) + 1

    def seconds_per_epoch(self) -> Optional[float]:
        """Mean epoch time so far, None before the first epoch ends."""
        return sum(self.times) / len(self.times) if self.times else None

    def seconds_left(self) -> Optional[float]:
        """The epochs still to train times the mean epoch time so far; None when either is unknown."""
        per_epoch = self.seconds_per_epoch()
        if per_epoch is None or not self.epochs:
            return None
        return max(self.epochs - self.done, 0) * per_epoch

    def summary(self) -> str:
        done = self.done
        per_epoch = sum(self.times) / len(self.times)
        head = f"epoch {done}" + (f"/{self.epochs}" if self.epochs else "")
        parts = [head + ":"]
        if self.loss is not None:
            parts.append(f"train loss {self.loss:.3f},")
        if self.dice:
            parts.append("pseudo-Dice " + " ".join(f"{v:.2f}" for v in self.dice) + ",")
        parts.append(f"{per_epoch:.1f} s/epoch")
        if self.epochs:
            parts[-1] += f", about {max(self.epochs - done, 0) * per_epoch:.0f} s left"
        return " ".join(parts)


def next_ema(previous: Optional[float], dice: List[float]) -> float:
    """nnU-Net's moving average of the mean foreground pseudo Dice after one more epoch (its logger's
    ``ema_fg_dice``: the first epoch's mean, then ``0.9 * previous + 0.1 * mean``; the mean skips NaN classes)."""
    finite = [v for v in dice if not math.isnan(v)]
    mean = sum(finite) / len(finite) if finite else math.nan
    return mean if previous is None else 0.9 * previous + 0.1 * mean
