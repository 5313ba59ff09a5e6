"""The convolutions a network can put where MSA2 puts SACM, by name (``MSA2UNet(multiscale_conv=...)``):

    "sacm"              SACM, MSA2-Net's self-adaptive convolution (``blocks/sacm.py``)
    "dmk"               FIAS's depthwise multi-kernel convolution (``blocks/dmk_conv.py``)
    "selective_kernel"  selective-kernel convolution, Li et al. 2019 (``blocks/selective_kernel.py``)
    "static"            a plain conv of the planned kernel size (nnU-Net's)

Each is (B, C_in, *S) -> (B, C_out, *S) at stride 1; ``AdaptiveConvNormAct`` follows it with dropout, norm and
nonlinearity.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Type

from torch import nn
from torch.nn.modules.conv import _ConvNd

from nnunet_msa.blocks.dmk_conv import DepthwiseMultiKernelConv
from nnunet_msa.blocks.geometry import same_padding
from nnunet_msa.blocks.sacm import REALIZATIONS, SACM, check_options
from nnunet_msa.blocks.selective_kernel import SelectiveKernelConv

MULTISCALE_CONVS = ("sacm", "dmk", "selective_kernel", "static")
#: the non-static kinds' module classes (recomputation, memory estimates)
MULTISCALE_TYPES = (SACM, DepthwiseMultiKernelConv, SelectiveKernelConv)


@dataclass(frozen=True)
class MultiScaleConvConfig:
    """Which convolution a network puts in SACM's place, and the options of SACM when it is SACM.

    enabled: False replaces SACM by a static ``conv_op`` of the planned kernel size (ablation "noSACM").
    num_candidates: K, candidate receptive fields 3, 5, 7, ... on every axis planned with kernel 3.
    realization: one of ``dilated`` (default), ``dense``, ``separable``, ``shared``, ``split`` (see ``SACM``).
    reduction: r of the gate's hidden width max(C_k // r, 8).
    kind: which multi-scale convolution takes SACM's place (``blocks/multiscale_conv.py``): "sacm" (default),
        "dmk", "selective_kernel" or "static"; the fields below apply to "sacm" only.
    fingerprint: "responses" or "input" (see ``SACM``).
    init: "he" or "static" (see ``SACM``; the network also starts its residual branches and gates at the identity).
    form: "auto", "kernel" or "outputs": how an input-fingerprint SACM computes y.
    dilations: per candidate its per-axis dilation (planned receptive fields, ``planning/candidate_plan.py``), or
        None for 1, 2, ..., K; the network sets it per decoder stage.
    """

    enabled: bool = True
    num_candidates: int = 3
    realization: str = "dilated"
    reduction: int = 4
    kind: str = "sacm"
    fingerprint: str = "responses"
    init: str = "he"
    form: str = "auto"
    dilations: Optional[Tuple[Tuple[int, ...], ...]] = None

    def __post_init__(self) -> None:
        if self.realization not in REALIZATIONS:
            raise ValueError(f"SACM realization must be one of {REALIZATIONS}, got {self.realization!r}.")
        if self.num_candidates < 1:
            raise ValueError(f"SACM needs at least one candidate kernel, got num_candidates={self.num_candidates}.")
        if self.reduction < 1:
            raise ValueError(f"SACM reduction must be >= 1, got {self.reduction}.")
        check_options(self.realization, self.fingerprint, self.init, self.form)


def check_multiscale_conv(kind: str) -> str:
    if kind not in MULTISCALE_CONVS:
        raise ValueError(f"multiscale_conv must be one of {MULTISCALE_CONVS}, got {kind!r}.")
    return kind


def make_multiscale_conv(conv_op: Type[_ConvNd], input_channels: int, output_channels: int,
                         kernel_size: Sequence[int], sacm: MultiScaleConvConfig, bias: bool,
                         norm_op: Optional[Type[nn.Module]] = None, norm_op_kwargs: Optional[dict] = None,
                         nonlin: Optional[Type[nn.Module]] = None, nonlin_kwargs: Optional[dict] = None) -> nn.Module:
    """The conv ``sacm.kind`` names (a static conv when ``sacm.enabled`` is False)."""
    kind = check_multiscale_conv(sacm.kind) if sacm.enabled else "static"
    if kind == "sacm":
        return SACM(conv_op, input_channels, output_channels, kernel_size, sacm.num_candidates, sacm.realization,
                    sacm.reduction, bias=bias, fingerprint=sacm.fingerprint, init=sacm.init, form=sacm.form,
                    dilations=sacm.dilations)
    if kind == "dmk":
        return DepthwiseMultiKernelConv(conv_op, input_channels, output_channels, kernel_size, bias=bias)
    if kind == "selective_kernel":
        return SelectiveKernelConv(conv_op, input_channels, output_channels, kernel_size, bias=bias,
                                   norm_op=norm_op, norm_op_kwargs=norm_op_kwargs, nonlin=nonlin,
                                   nonlin_kwargs=nonlin_kwargs)
    return conv_op(input_channels, output_channels, kernel_size, 1, padding=same_padding(kernel_size), bias=bias)
