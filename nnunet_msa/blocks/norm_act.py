"""Norm and nonlinearity from the plans' ``norm_op`` / ``nonlin`` (``nn.Identity`` when the plans give none), and
the per-axis kernel helpers the multi-scale blocks share."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Type

from torch import nn


def make_norm(norm_op: Optional[Type[nn.Module]], channels: int, kwargs: Optional[dict]) -> nn.Module:
    """``norm_op(channels, **kwargs)`` or ``nn.Identity()``."""
    return norm_op(channels, **(kwargs or {})) if norm_op is not None else nn.Identity()


def make_act(nonlin: Optional[Type[nn.Module]], kwargs: Optional[dict]) -> nn.Module:
    """``nonlin(**kwargs)`` or ``nn.Identity()``."""
    return nonlin(**(kwargs or {})) if nonlin is not None else nn.Identity()


def widen_kernel(planned: Sequence[int], size: int) -> Tuple[int, ...]:
    """A ``size`` kernel on every axis the plans convolve (planned kernel > 1), 1 on the others: anisotropic 3D
    plans (kernel 1 along a thick-slice axis) keep their in-plane-only convolutions."""
    return tuple(size if k > 1 else 1 for k in planned)


def same_padding(kernel: Sequence[int], dilation: Sequence[int] = ()) -> Tuple[int, ...]:
    """'same' padding of an odd kernel, per axis."""
    dilation = tuple(dilation) or (1,) * len(kernel)
    return tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
