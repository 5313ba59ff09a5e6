"""SACM's two element-wise steps with a hand-written backward: fewer passes over the (B, C, *S) responses.

Autograd records every elementary op of ``mean``, ``(r - mean)²``, ``sqrt`` and of ``Σ_k π_k · r_k`` and replays
each in backward (a sub, a pow, a mul, a div and an expand per response for the statistics alone). On CPU, where
nothing fuses them, those full-size passes cost more than the depthwise convolutions they follow (see
``docs/cost.md``). The functions below compute the same values; their backward is one fused pass per response:

    ∂L/∂r = ∂L/∂μ / N + ∂L/∂σ · (r - μ) / (N σ)          (statistics; N = spatial size)
    ∂L/∂r_k = π_k · ∂L/∂y,   ∂L/∂π_k = Σ_{c,S} r_k · ∂L/∂y   (mixing)

Both work under autocast (statistics in float32 or wider, as the spec asks), in eager, under ``torch.compile``
(``fullgraph=True``) and under activation checkpointing.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch


class _SpatialMeanStd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, r: torch.Tensor, n_spatial: int, eps: float) -> Tuple[torch.Tensor, torch.Tensor]:
        dims = tuple(range(2, 2 + n_spatial))
        r32 = r.to(torch.promote_types(r.dtype, torch.float32))
        mean = r32.mean(dim=dims, keepdim=True)
        var = (r32 - mean).square().mean(dim=dims)
        std = torch.sqrt(var + eps)
        ctx.save_for_backward(r, mean, std)
        ctx.n_spatial = n_spatial
        return mean.flatten(1), std

    @staticmethod
    def backward(ctx, g_mean: torch.Tensor, g_std: torch.Tensor):
        r, mean, std = ctx.saved_tensors
        n = r[0, 0].numel()
        view = std.shape + (1,) * ctx.n_spatial
        b = (g_std / (n * std)).view(view)
        a = g_mean.view(view) / n - b * mean
        return torch.addcmul(a, r, b).to(r.dtype), None, None


def spatial_mean_std(r: torch.Tensor, eps: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-channel spatial mean and population std of r (B, C, *S): two (B, C) tensors in float32 (or wider).

    Two passes in forward (mean, then the mean square of the centred response: the numbers of ``torch.var_mean``,
    about 4x faster on CPU), one in backward. Without autograd (prediction) the same ops run without the
    autograd.Function's overhead."""
    if not (torch.is_grad_enabled() and r.requires_grad):
        wide = torch.promote_types(r.dtype, torch.float32)
        flat = (r if r.dtype == wide else r.to(wide)).flatten(2)
        mean = flat.mean(dim=2, keepdim=True)
        return mean.squeeze(2), torch.sqrt((flat - mean).square_().mean(dim=2) + eps)
    return _SpatialMeanStd.apply(r, r.dim() - 2, float(eps))


class _MixCandidates(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pi: torch.Tensor, *responses: torch.Tensor) -> torch.Tensor:
        view = (pi.shape[0],) + (1,) * (responses[0].dim() - 1)
        w = pi.to(responses[0].dtype)
        out = responses[0] * w[:, 0].view(view)
        for j in range(1, len(responses)):
            out.addcmul_(responses[j], w[:, j].view(view))
        ctx.save_for_backward(w, *responses)
        ctx.pi_dtype = pi.dtype
        return out

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        w, *responses = ctx.saved_tensors
        view = (w.shape[0],) + (1,) * (g.dim() - 1)
        dims = tuple(range(1, g.dim()))
        grads_r = [g * w[:, j].view(view) if ctx.needs_input_grad[1 + j] else None for j in range(len(responses))]
        g_pi = None
        if ctx.needs_input_grad[0]:
            acc = torch.promote_types(g.dtype, torch.float32)
            g_pi = torch.stack([(g * r).sum(dim=dims, dtype=acc) for r in responses], dim=1).to(ctx.pi_dtype)
        return (g_pi, *grads_r)


def mix_candidates(pi: torch.Tensor, responses: Sequence[torch.Tensor]) -> torch.Tensor:
    """y = Σ_k π_k · r_k (spec eq. for SACM's output, without bias). pi: (B, K); responses: K tensors (B, C, *S) of
    one dtype and shape; y has their dtype and the layout of the first. One allocation in forward."""
    return _MixCandidates.apply(pi, *responses)
