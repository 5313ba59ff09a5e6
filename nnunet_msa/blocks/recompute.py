"""Activation recomputation ("gradient checkpointing") for the MSA2 blocks.

A block with ``recompute = True`` keeps only its inputs for backward and runs its forward a second time during
backward (``torch.utils.checkpoint``, non-reentrant, RNG state preserved so dropout draws the same mask). The
result and the gradients are the same; memory drops to the inputs, time grows by one forward of the block. It is
used only while autograd records (training); inference (``torch.no_grad``/``inference_mode``) runs the block once.

Norms with running statistics (BatchNorm) update them twice per step under recomputation; nnU-Net's plans use
InstanceNorm, which has none.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch.utils.checkpoint import checkpoint


def maybe_recompute(enabled: bool, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, through ``torch.utils.checkpoint`` when ``enabled`` and autograd is recording."""
    if enabled and torch.is_grad_enabled() and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args):
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)
