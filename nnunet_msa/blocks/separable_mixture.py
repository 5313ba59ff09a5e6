"""SACM ``separable`` in kernel form as one autograd function: the per-sample depthwise mixture and the pointwise
conv after it, keeping only x for backward.

    z_b = depthwise(x_b, Σ_k π_bk · Ŵ_k)          (B, C_in, *S): one per-sample depthwise conv (``per_sample_conv``)
    y_b = W_pw · z_b + b                           (B, C_out, *S)

Autograd would keep z (C_in channels at the block's resolution, for the pointwise weight gradient) besides what a
static conv block keeps; here z is recomputed in backward (one depthwise forward, a few percent of the block), so a
SACM block keeps what nnU-Net's conv block keeps. The gradients:

    ∂L/∂z = W_pwᵀ ∂L/∂y,   ∂L/∂W_pw = Σ_b ∂L/∂y_b z_bᵀ,   ∂L/∂b = Σ ∂L/∂y
    ∂L/∂x = depthwise(∂L/∂z, flip(Σ_k π_k Ŵ_k)),  ∂L/∂(π_bk W_k) = correlation of x_b and ∂L/∂z_b at candidate k's
    taps, hence ∂L/∂W_k and ∂L/∂π_bk.

The correlation is taken on the whole embedded grid in one convolution and read at each candidate's taps in 2D
(49 taps against 27, but one call: 2-7x faster on hippocampus and ACDC shapes) and for (1, k, k) kernels (oneDNN's
backward of the slice-batched 2D conv, ``per_sample_conv._slicewise_grads``); in 3D one strided convolution per
candidate computes only its taps (81 of the grid's 343; ``per_sample_conv._candidate_grad``). (1, k, k) kernels in
3D run as slice-batched 2D convolutions in forward, so anisotropic plans keep only x as well (ACDC 3d_fullres: the
step's peak memory 1.17x nnU-Net's before, 1.04x after).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch

from nnunet_msa.blocks.per_sample_conv import _candidate_grad, _depthwise_forward, _depthwise_weight_grad, _slicewise, \
    _slicewise_forward, _slicewise_grads, candidate_taps, embed_dilated, mix_kernels


def _mixed_kernel(pi: torch.Tensor, weights: Sequence[torch.Tensor], dilations, dtype: torch.dtype) -> torch.Tensor:
    """Σ_k π_bk Ŵ_k per sample: (B, C, *R)."""
    return mix_kernels(pi, embed_dilated(list(weights), dilations), dtype)[:, :, 0]  # (K, C, 1, *R) -> (B, C, *R)


def _pointwise(z: torch.Tensor, w: torch.Tensor, b: Optional[torch.Tensor]) -> torch.Tensor:
    B, c_in = z.shape[:2]
    c_out = w.shape[0]
    flat = z.reshape(B, c_in, -1)
    wb = w.reshape(1, c_out, c_in).expand(B, c_out, c_in)
    y = torch.bmm(wb, flat) if b is None else torch.baddbmm(b.reshape(1, c_out, 1).expand(B, c_out, 1), wb, flat)
    return y.reshape(B, c_out, *z.shape[2:])


def _conv(x: torch.Tensor, w_b: torch.Tensor) -> torch.Tensor:
    """The per-sample depthwise conv; (1, k, k) kernels in 3D as slice-batched 2D convs."""
    return _slicewise_forward(x, w_b) if _slicewise(x, w_b) else _depthwise_forward(x, w_b)


class _SeparableMixture(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, pi: torch.Tensor, dilations: Tuple[Tuple[int, ...], ...],
                pw_weight: torch.Tensor, pw_bias: Optional[torch.Tensor], *weights: torch.Tensor) -> torch.Tensor:
        ctx.dilations = dilations
        ctx.has_bias = pw_bias is not None
        w_b = _mixed_kernel(pi, weights, dilations, x.dtype)
        z = _conv(x, w_b)
        ctx.save_for_backward(x, pi, pw_weight, *weights)
        return _pointwise(z, pw_weight.to(x.dtype), None if pw_bias is None else pw_bias.to(x.dtype))

    @staticmethod
    def backward(ctx, gy: torch.Tensor):
        x, pi, pw_weight, *weights = ctx.saved_tensors
        dt = x.dtype
        gy = gy.to(dt).contiguous()
        B, c_in = x.shape[:2]
        c_out = pw_weight.shape[0]
        w_pw = pw_weight.to(dt).reshape(c_out, c_in)
        w_b = _mixed_kernel(pi, weights, ctx.dilations, dt)
        z = _conv(x, w_b)  # recomputed, not kept
        gflat = gy.reshape(B, c_out, -1)
        g_pw = torch.bmm(gflat, z.reshape(B, c_in, -1).transpose(1, 2)).sum(0)  # (C_out, C_in)
        g_pw = g_pw.reshape(pw_weight.shape).to(pw_weight.dtype)
        g_bias = gflat.sum(dim=(0, 2)) if ctx.has_bias else None
        gz = torch.matmul(w_pw.t(), gflat).reshape(z.shape)  # (B, C_in, *S)
        del z
        xc = x.contiguous()
        if _slicewise(x, w_b):  # (1, k, k) kernels: oneDNN's backward of the slice-batched conv, on the full grid
            gx, g_grid = _slicewise_grads(xc, gz, w_b, ctx.needs_input_grad[0])
        else:
            gx = _depthwise_forward(gz, w_b.flip(list(range(2, w_b.dim())))) if ctx.needs_input_grad[0] else None
            # 2D: the whole grid's gradient in one conv (2-7x faster than one per candidate, 49 taps against 27);
            # 3D: per candidate (343 grid taps against 81)
            g_grid = _depthwise_weight_grad(xc, gz, w_b.shape[2:]) if x.dim() == 4 else None
        if g_grid is not None:
            grads = [candidate_taps(g_grid, w.shape[2:], d) for w, d in zip(weights, ctx.dilations)]
        else:
            grads = [_candidate_grad(xc, gz, w.shape[2:], d) for w, d in zip(weights, ctx.dilations)]
        g_pi, g_w = [], []
        for j, (w, G) in enumerate(zip(weights, grads)):  # G (B, C_in, *k): ∂L/∂(π_bj W_j)
            g_w.append(torch.einsum("b,bc...->c...", pi[:, j].to(G.dtype), G).unsqueeze(1).to(w.dtype))
            g_pi.append((G * w[:, 0].to(G.dtype)).flatten(1).sum(1))
        if g_bias is not None:
            g_bias = g_bias.to(pw_weight.dtype)
        return (gx, torch.stack(g_pi, dim=1).to(pi.dtype), None, g_pw, g_bias, *g_w)


def separable_mixture(x: torch.Tensor, pi: torch.Tensor, weights: Sequence[torch.Tensor],
                      dilations: Sequence[Sequence[int]], pw_weight: torch.Tensor,
                      pw_bias: Optional[torch.Tensor]) -> torch.Tensor:
    """W_pw · depthwise(x_b, Σ_k π_bk Ŵ_k) + b for every sample: x (B, C_in, *S), π (B, K), W_k (C_in, 1, *k),
    per-axis dilations, W_pw (C_out, C_in, 1, ...), b (C_out) or None -> (B, C_out, *S), keeping only x (and the
    small tensors) for backward; (1, k, k) kernels in 3D (anisotropic plans) run as slice-batched 2D convs."""
    dilations = tuple(tuple(int(v) for v in d) for d in dilations)
    return _SeparableMixture.apply(x.contiguous(), pi, dilations, pw_weight, pw_bias, *weights)
