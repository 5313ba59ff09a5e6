"""MASAG: multi-scale adaptive spatial attention gate (MSA2-Net with MASAG, Sec. 3.3, equations 1-6).

Inputs X (the encoder skip, after the bridge) and G (the upsampled decoder feature), both (B, C, *S):

    eq. 1  U   = norm( Conv1x1(DWD(DW(X))) + Conv1x1([mean_c G; max_c G]) )     (local + global context)
    eq. 2-3 SW = softmax_2(Conv1x1(U));  X' = SW_1·X + X;  G' = SW_2·G + G      (spatial selection)
    eq. 4-5 X'' = X'·σ(G');  G'' = G'·σ(X');  U' = X''·G''                      (interaction, cross-modulation)
    eq. 6  out = norm( Conv1x1( σ(norm(Conv1x1(U'))) · X ) )                    (recalibration of the original X)

DW is a depthwise conv of the planned kernel, DWD a depthwise conv of the planned kernel at dilation 2 (both ->
norm -> nonlin). The norms around eq. 1 and 6 follow the authors' code, with the plans' norm. The attention path
(eq. 2-6 up to the sigmoid) runs in float32 so that autocast's float16 cannot overflow X''·G''.

``identity_start`` (the network's ``init="static"``): the output is blended with the skip it gates,
out = X + α ⊙ (eq. 6 − X) with a per-channel α that starts at 0, so the gate starts as the identity on the skip
(nnU-Net's plain skip) and becomes eq. 6 as α grows to 1.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Type, Union

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd

from nnunet_msa.blocks.fast_conv import fast_conv, pointwise_conv
from nnunet_msa.blocks.masag_interaction import masag_interaction
from nnunet_msa.blocks.norm_act import make_act, make_norm
from nnunet_msa.blocks.recompute import maybe_recompute
from nnunet_msa.blocks.geometry import as_per_axis, conv_dim


def _conv_norm_act(seq: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Run a (depthwise conv, norm, nonlin) Sequential with the conv through ``fast_conv`` (CPU fast paths)."""
    conv = seq[0]
    h = fast_conv(x, conv.weight, conv.bias, conv.padding, conv.dilation, conv.groups)
    return seq[2](seq[1](h))


def _pw(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A 1×1 conv module applied through ``pointwise_conv`` (its weights, a faster CPU route)."""
    return pointwise_conv(x, conv.weight, conv.bias)


class MASAG(nn.Module):
    """(X: (B, C, *S), G: (B, C, *S)) -> (B, C, *S), the recalibrated skip."""

    def __init__(
        self,
        conv_op: Type[_ConvNd],
        channels: int,
        kernel_size: Union[int, Sequence[int]] = 3,
        norm_op: Optional[Type[nn.Module]] = None,
        norm_op_kwargs: Optional[dict] = None,
        nonlin: Optional[Type[nn.Module]] = None,
        nonlin_kwargs: Optional[dict] = None,
        conv_bias: bool = True,
        identity_start: bool = False,
    ) -> None:
        super().__init__()
        dim = conv_dim(conv_op)
        k = as_per_axis(kernel_size, dim, "kernel_size")
        C = channels
        self.channels = C
        self.observe = False
        self.recompute = False  # rerun each of eq. 1, eq. 2-6 and the output in backward (blocks/recompute.py)
        self.last_attention: Optional[torch.Tensor] = None
        # eq. 1, local context: DW -> norm -> nonlin, DWD (dilation 2) -> norm -> nonlin, Conv1x1
        self.dw = nn.Sequential(
            conv_op(C, C, k, padding=[(i - 1) // 2 for i in k], groups=C, bias=conv_bias),
            make_norm(norm_op, C, norm_op_kwargs), make_act(nonlin, nonlin_kwargs))
        self.dwd = nn.Sequential(
            conv_op(C, C, k, padding=[i - 1 for i in k], dilation=[2 if i > 1 else 1 for i in k], groups=C,
                    bias=conv_bias),
            make_norm(norm_op, C, norm_op_kwargs), make_act(nonlin, nonlin_kwargs))
        self.local_proj = conv_op(C, C, 1, bias=conv_bias)
        # eq. 1, global context: Conv1x1 over [channel mean; channel max] of G, 2 -> 1, broadcast over channels
        self.global_proj = conv_op(2, 1, 1, bias=True)
        self.fuse_norm = make_norm(norm_op, C, norm_op_kwargs)
        # eq. 2, spatial selection: C -> 2 weights, softmax over the two
        self.select = conv_op(C, 2, 1, bias=True)
        # eq. 6, recalibration
        self.recal_proj = conv_op(C, C, 1, bias=conv_bias)
        self.recal_norm = make_norm(norm_op, C, norm_op_kwargs)
        self.out_proj = conv_op(C, C, 1, bias=conv_bias)
        self.out_norm = make_norm(norm_op, C, norm_op_kwargs)
        # blend with the skip, (1, C, 1, ...) starting at 0 (identity_start only)
        self.blend = nn.Parameter(torch.zeros((1, C) + (1,) * dim)) if identity_start else None

    def context(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Eq. 1: U = norm(local(X) + global(G)), (B, C, *S)."""
        local = _pw(self.local_proj, _conv_norm_act(self.dwd, _conv_norm_act(self.dw, x)))
        # channel mean accumulated and rounded once in float32 under autocast (the max is exact in any dtype)
        mean = g.mean(dim=1, keepdim=True, dtype=torch.float32).to(g.dtype)
        pooled = torch.cat([mean, g.amax(dim=1, keepdim=True)], dim=1)
        return self.fuse_norm(local + self.global_proj(pooled))

    def attention_map(self, x: torch.Tensor, g: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Eq. 2-6 up to the sigmoid: σ(norm(Conv1x1(U'))), (B, C, *S), float32 in [0, 1]. Eq. 2-5 run as one
        function (``masag_interaction``: U' = silu(X')·silu(G'), the same product regrouped) that keeps only its
        inputs for backward."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            wide = torch.promote_types(x.dtype, torch.float32)
            x, g, u = x.to(wide), g.to(wide), u.to(wide)
            u1 = masag_interaction(_pw(self.select, u), x, g)  # eq. 2-5: X''·G''
            return torch.sigmoid(self.recal_norm(_pw(self.recal_proj, u1)))  # eq. 6, inner part

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        if x.shape != g.shape:
            raise ValueError(f"MASAG needs the skip X and the decoder feature G of the same shape, got "
                             f"{tuple(x.shape)} and {tuple(g.shape)}.")
        u = maybe_recompute(self.recompute, self.context, x, g)
        att = maybe_recompute(self.recompute, self.attention_map, x, g, u)
        if self.observe:
            self.last_attention = att.mean(dim=1, keepdim=True).detach()
        return maybe_recompute(self.recompute, self._output, att, x)

    def _output(self, att: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Eq. 6, outer part: norm(Conv1x1(att · X)), (B, C, *S) in X's dtype (blended with X: ``identity_start``)."""
        out = self.out_norm(_pw(self.out_proj, att.to(x.dtype) * x))
        if self.blend is not None:
            out = torch.lerp(x, out, self.blend.to(out.dtype))
        return out

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> int:
        """What the gate keeps for backward in nnU-Net's planner unit (two C-channel maps = C·n, as a static conv
        block): about twelve maps (eq. 1: DW and DWD outputs and their norms, the fused sum, U; eq. 6: U', its
        projection, the attention map, att·X, the output projection, the output; eq. 2-5 keep only their inputs), or
        two with ``recompute`` (U and att, between its three recomputed parts)."""
        return int((2 if self.recompute else 12) * self.channels * math.prod(int(s) for s in input_size) // 2)
