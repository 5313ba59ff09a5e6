"""What nnU-Net's training log says: epoch times, losses and pseudo-Dice per epoch."""
from __future__ import annotations

import glob
import os
import re
from typing import List, Optional

_EPOCH_TIME = re.compile(r"Epoch time: ([0-9.]+) s")
_EPOCH = re.compile(r": Epoch (\d+)\s*$")
_LOSS = re.compile(r": train_loss (-?[0-9.eE+-]+)")
_DICE = re.compile(r": Pseudo dice \[(.*)\]")
_WRAPPER = re.compile(r"^np\.float\d+\(|\)$")


def epoch_times(path: str) -> List[float]:
    """nnU-Net's ``Epoch time: X s`` values, in order, from one training log or from every
    ``training_log_*.txt`` of a fold folder (a resumed run writes several)."""
    logs = (sorted(glob.glob(os.path.join(path, "training_log_*.txt"))) if os.path.isdir(path) else [path])
    times: List[float] = []
    for log in logs:
        with open(log, errors="replace") as f:
            times += [float(m) for m in _EPOCH_TIME.findall(f.read())]
    return times


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
    """Follows nnU-Net's training output line by line; after each epoch, a one-line summary with the time left:

        epoch 3/5: train loss -0.412, pseudo-Dice 0.61 0.55, 12.3 s/epoch, about 25 s left
    """

    def __init__(self, epochs: Optional[int] = None) -> None:
        self.epochs = epochs
        self.epoch: Optional[int] = None
        self.loss: Optional[float] = None
        self.dice: Optional[List[float]] = None
        self.times: List[float] = []

    def feed(self, line: str) -> Optional[str]:
        """Take one line of output; return the summary when the line closes an epoch."""
        if (m := _EPOCH.search(line)) is not None:
            self.epoch, self.loss, self.dice = int(m.group(1)), None, None
        elif (m := _LOSS.search(line)) is not None:
            self.loss = float(m.group(1))
        elif (d := pseudo_dice(line)) is not None:
            self.dice = d
        elif (m := _EPOCH_TIME.search(line)) is not None:
            self.times.append(float(m.group(1)))
            return self.summary()
        return None

    def summary(self) -> str:
        done = (self.epoch if self.epoch is not None else len(self.times) - 1) + 1
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
