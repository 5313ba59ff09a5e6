"""Test-time mirroring in one batch: the mirrored copies of a prediction tile evaluated together.

nnU-Net's predictor (``nnUNetPredictor._internal_maybe_mirror_and_predict``) evaluates every tile of the sliding
window 2^d times at batch 1: the tile x, then flip(x, c) for each combination c of the mirror axes, one forward pass
each. On CPU a forward pass of a small tile (hippocampus 2d: 1×1×56×40) is dominated by the fixed cost of its
operators, not by their arithmetic, and MSA2's network has more operators than nnU-Net's (the fingerprint, the gate,
MASAG). ``MirrorBatcher`` learns the predictor's mirror combinations from the first tile (each call that equals
flip(first tile, c) adds c, in the predictor's order), and from the next tile on evaluates

    [x, flip(x, c_1), ..., flip(x, c_m)]   (1 + m, C, *S)   in one forward pass,

returns the first output and keeps the others; the predictor's next calls are answered from them when their input is
bitwise equal to the flipped tile the output was computed for and the weights have not changed since (their
version counters; ``load_state_dict`` of another fold changes them). Anything else is an ordinary forward pass, so
the results are the network's own: the network is per-sample (instance and group norms, per-sample SACM kernels),
a batch changes only the order of floating-point sums.

It applies only where it pays and is safe: eval mode without autograd, batch 1, on CPU, tiles of at most
``max_voxels`` voxels (larger tiles are compute-bound, and 2^d copies of them cost memory), never while compiling.
"""
from __future__ import annotations

import itertools
import math
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch

Output = Union[torch.Tensor, List[torch.Tensor]]


def _select(out: Output, i: int) -> Output:
    """Sample i of a network output (a tensor, or the deep-supervision list), batch dim kept."""
    if isinstance(out, (list, tuple)):
        return [o[i:i + 1] for o in out]
    return out[i:i + 1]


def is_compiling() -> bool:
    """Whether torch.compile is tracing (the batcher's Python state stays out of compiled graphs)."""
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and hasattr(compiler, "is_compiling") and compiler.is_compiling())


class MirrorBatcher:
    """Answers the predictor's mirrored evaluations of a tile from one batched forward pass (module docstring).

    ``enabled``: switch (``MSA2UNet(mirror_batching=...)``); ``max_voxels``: largest tile (spatial voxels) batched.
    State is plain Python (not in the ``state_dict``)."""

    def __init__(self, enabled: bool = True, max_voxels: int = 2 ** 18) -> None:
        self.enabled = bool(enabled)
        self.max_voxels = int(max_voxels)
        self.batched_calls = 0  # forward passes run as a batch of mirrored copies
        self.answered_calls = 0  # calls answered from a batch
        self.reset()

    def reset(self) -> None:
        """Forget the learned combinations and any kept outputs."""
        self._anchor: Optional[torch.Tensor] = None
        self._combos: List[Tuple[int, ...]] = []
        self._learning = True
        self._pending: List[Tuple[torch.Tensor, Output, bool]] = []  # (input, output, asked for)
        self._weights_key: Optional[Tuple[int, ...]] = None

    def applies(self, x: torch.Tensor, training: bool) -> bool:
        """Whether a call with x goes through the batcher."""
        return (self.enabled and not training and not torch.is_grad_enabled() and x.shape[0] == 1
                and x.device.type == "cpu" and math.prod(x.shape[2:]) <= self.max_voxels and not is_compiling())

    def __call__(self, forward: Callable[[torch.Tensor], Output], x: torch.Tensor,
                 parameters: Sequence[torch.Tensor]) -> Output:
        """``forward(x)``, or its answer from a batch computed earlier. x: (1, C, *S)."""
        key = tuple(p._version for p in parameters)
        if self._pending and key == self._weights_key:
            for i, (inp, out, asked) in enumerate(self._pending):
                if not asked and inp.shape == x.shape and inp.dtype == x.dtype and torch.equal(inp, x):
                    self._pending[i] = (inp, out, True)
                    self.answered_calls += 1
                    return out
        if key != self._weights_key:
            self._pending, self._weights_key = [], key
        if self._learning and self._anchor is not None and self._anchor.shape == x.shape:
            combo = self._mirror_of_anchor(x)
            if combo is not None:
                self._combos.append(combo)
                return forward(x)
        return self._new_tile(forward, x)

    def _mirror_of_anchor(self, x: torch.Tensor) -> Optional[Tuple[int, ...]]:
        """The axes combination c (not learned yet, not empty) with x == flip(anchor, c), if any."""
        spatial = range(2, x.dim())
        for n in range(1, len(spatial) + 1):
            for combo in itertools.combinations(spatial, n):
                if combo not in self._combos and torch.equal(torch.flip(self._anchor, combo), x):
                    return combo
        return None

    def _new_tile(self, forward: Callable[[torch.Tensor], Output], x: torch.Tensor) -> Output:
        if self._pending:
            # keep the combinations the predictor asked for; none asked: back to learning
            used = [c for c, (_, _, asked) in zip(self._combos, self._pending) if asked]
            self._combos, self._pending = used, []
        if self._learning and self._combos:
            self._learning = False  # the first tile's combinations are the predictor's
        if not self._combos:
            self._learning, self._anchor = True, x
            return forward(x)
        self._anchor = None
        inputs = [x] + [torch.flip(x, c) for c in self._combos]
        out = forward(torch.cat(inputs, dim=0))
        self.batched_calls += 1
        self._pending = [(inputs[i], _select(out, i), False) for i in range(1, len(inputs))]
        return _select(out, 0)
