"""SACM's fused element-wise steps: the values and gradients of the plain autograd expressions (spec eq. of the
fingerprint and of the mixture), in float64 (gradcheck), in channels-last layout and under bfloat16 autocast."""
from __future__ import annotations

import pytest
import torch

from nnunet_msa.blocks.fast_conv import channels_last
from nnunet_msa.blocks.fused_ops import mix_candidates, spatial_mean_std


def _reference_stats(r: torch.Tensor, eps: float):
    dims = tuple(range(2, r.dim()))
    var, mean = torch.var_mean(r.float() if r.dtype != torch.float64 else r, dim=dims, unbiased=False)
    return mean, torch.sqrt(var + eps)


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (2, 3, 3, 4, 5)])
def test_spatial_mean_std_gradcheck(shape):
    torch.manual_seed(0)
    r = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: spatial_mean_std(t, 1e-5), (r,))
    for a, b in zip(spatial_mean_std(r, 1e-5), _reference_stats(r, 1e-5)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (3, 2, 3, 4, 5)])
def test_mix_candidates_gradcheck(shape):
    torch.manual_seed(0)
    pi = torch.softmax(torch.randn(shape[0], 3, dtype=torch.float64), 1).requires_grad_(True)
    rs = [torch.randn(shape, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    assert torch.autograd.gradcheck(lambda p, *t: mix_candidates(p, t), (pi, *rs))


def test_channels_last_and_bf16_match_autograd():
    torch.manual_seed(0)
    x = channels_last(torch.randn(2, 4, 6, 5, 7))
    rs = [(x * (j + 1)).detach().requires_grad_(True) for j in range(3)]
    pi = torch.softmax(torch.randn(2, 3), 1).requires_grad_(True)
    y = mix_candidates(pi, rs)
    assert y.is_contiguous(memory_format=torch.channels_last_3d)
    ref = sum(r * pi[:, j].view(2, 1, 1, 1, 1) for j, r in enumerate(rs))
    torch.testing.assert_close(y, ref)
    g = torch.randn_like(ref)
    ga = torch.autograd.grad(y, [pi, *rs], g)
    gb = torch.autograd.grad(ref, [pi, *rs], g)
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # bf16 responses: statistics in float32, gradients back in bf16
    rb = rs[0].detach().to(torch.bfloat16).requires_grad_(True)
    mean, std = spatial_mean_std(rb, 1e-5)
    assert mean.dtype == std.dtype == torch.float32
    (mean.sum() + std.sum()).backward()
    assert rb.grad.dtype == torch.bfloat16 and torch.isfinite(rb.grad).all()


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (2, 3, 3, 4, 5)])
def test_masag_interaction_is_eq_2_to_5(shape):
    """U' = X''·G'' of eq. 2-5 (softmax selection, residual modulation, cross sigmoid products) and its gradients."""
    from nnunet_msa.blocks.masag_interaction import masag_interaction

    torch.manual_seed(0)
    logits = torch.randn((shape[0], 2) + shape[2:], dtype=torch.float64, requires_grad=True)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    g = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    sw = torch.softmax(logits, dim=1)
    x1, g1 = sw[:, 0:1] * x + x, sw[:, 1:2] * g + g
    ref = (x1 * torch.sigmoid(g1)) * (g1 * torch.sigmoid(x1))
    torch.testing.assert_close(masag_interaction(logits, x, g), ref)
    assert torch.autograd.gradcheck(masag_interaction, (logits, x, g))


def test_pointwise_conv_equals_a_1x1_conv():
    from nnunet_msa.blocks.fast_conv import pointwise_conv

    torch.manual_seed(0)
    for x, w in ((torch.randn(3, 4, 5, 6), torch.randn(7, 4, 1, 1)), (torch.randn(2, 4, 3, 5, 6), torch.randn(2, 4, 1, 1, 1))):
        conv = torch.nn.functional.conv2d if x.dim() == 4 else torch.nn.functional.conv3d
        b = torch.randn(w.shape[0])
        torch.testing.assert_close(pointwise_conv(x, w, b), conv(x, w, b), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(pointwise_conv(x, w), conv(x, w), rtol=1e-5, atol=1e-5)
