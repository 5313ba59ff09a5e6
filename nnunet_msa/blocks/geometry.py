"""Per-axis geometry shared by every block: the dimensionality of a ``conv_op``, per-axis values from scalars,
widened kernels on the axes the plans convolve, and 'same' padding.

``conv_dim`` is dynamic-network-architectures' ``convert_conv_op_to_dim`` with an error that names the fix.
"""
from __future__ import annotations

from typing import Sequence, Tuple, Type, Union

from dynamic_network_architectures.building_blocks.helper import convert_conv_op_to_dim
from torch.nn.modules.conv import _ConvNd


def conv_dim(conv_op: Type[_ConvNd]) -> int:
    """Spatial dimensionality (1, 2 or 3) of a ``torch.nn.ConvNd`` class (or a subclass)."""
    try:
        return convert_conv_op_to_dim(conv_op)
    except (ValueError, TypeError):
        raise ValueError(f"conv_op must be nn.Conv1d, nn.Conv2d or nn.Conv3d, got {conv_op}.") from None


def as_per_axis(value: Union[int, Sequence[int]], dim: int, name: str) -> Tuple[int, ...]:
    """Expand a scalar to one value per spatial axis; check the length of a sequence."""
    if isinstance(value, int):
        return (value,) * dim
    value = tuple(int(v) for v in value)
    if len(value) != dim:
        raise ValueError(f"{name} {list(value)} has {len(value)} entries but the convolution is {dim}D.")
    return value


def widen_kernel(planned: Sequence[int], size: int) -> Tuple[int, ...]:
    """A ``size`` kernel on every axis the plans convolve (planned kernel > 1), 1 on the others: anisotropic 3D
    plans (kernel 1 along a thick-slice axis) keep their in-plane-only convolutions."""
    return tuple(size if k > 1 else 1 for k in planned)


def same_padding(kernel: Sequence[int], dilation: Sequence[int] = ()) -> Tuple[int, ...]:
    """'same' padding of an odd kernel, per axis."""
    dilation = tuple(dilation) or (1,) * len(kernel)
    return tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
