"""MASAG's spatial selection and cross-modulation (MSA2-Net with MASAG, eq. 2-5) as one autograd function.

    eq. 2    SW = softmax_2(L)                          L (B, 2, *S): the selection logits Conv1x1(U)
    eq. 3    X' = SW_1·X + X,   G' = SW_2·G + G
    eq. 4-5  U' = X''·G'' = (X'·σ(G'))·(G'·σ(X')) = silu(X')·silu(G')

The rewrite of eq. 4-5 is exact (the four factors regrouped: X'·σ(X') = silu(X')), and the softmax over two
channels is σ(L_1 − L_2). Autograd would keep X', G', both sigmoids and the partial products for backward (six
C-channel maps); this function keeps only L, X and G (which the gate keeps anyway) and recomputes the rest in its
backward, so MASAG needs no activation recomputation of its convolutions to stay within nnU-Net's memory:

    ∂L/∂X' = silu'(X')·silu(G')·∂L/∂U'      ∂L/∂X = (1 + SW_1)·∂L/∂X'      ∂L/∂SW_1 = Σ_c X·∂L/∂X'
    ∂L/∂G' = silu'(G')·silu(X')·∂L/∂U'      ∂L/∂G = (1 + SW_2)·∂L/∂G'      ∂L/∂SW_2 = Σ_c G·∂L/∂G'
    ∂L/∂L_1 = −∂L/∂L_2 = SW_1·SW_2·(∂L/∂SW_1 − ∂L/∂SW_2)
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F


def _select(logits: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    sw1 = torch.sigmoid(logits[:, 0:1] - logits[:, 1:2])
    return sw1, 1.0 - sw1


def _modulated(logits: torch.Tensor, x: torch.Tensor, g: torch.Tensor):
    sw1, sw2 = _select(logits)
    x1 = torch.addcmul(x, x, sw1)
    g1 = torch.addcmul(g, g, sw2)
    return sw1, sw2, x1, g1


class _Interaction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(logits, x, g)
        _, _, x1, g1 = _modulated(logits, x, g)
        return F.silu(x1).mul_(F.silu(g1))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        logits, x, g = ctx.saved_tensors
        sw1, sw2, x1, g1 = _modulated(logits, x, g)
        gx1 = torch.ops.aten.silu_backward(grad * F.silu(g1), x1)
        gg1 = torch.ops.aten.silu_backward(grad * F.silu(x1), g1)
        g_sw1 = (gx1 * x).sum(dim=1, keepdim=True)
        g_sw2 = (gg1 * g).sum(dim=1, keepdim=True)
        g_d = sw1 * sw2 * (g_sw1 - g_sw2)
        g_logits = torch.cat([g_d, -g_d], dim=1)
        return g_logits, gx1.mul_(1.0 + sw1), gg1.mul_(1.0 + sw2)


def masag_interaction(logits: torch.Tensor, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """U' of eq. 2-5 from the selection logits (B, 2, *S) and X, G (B, C, *S), all of one dtype: (B, C, *S)."""
    return _Interaction.apply(logits, x, g)
