"""SACM's kernel form: convolutions with a kernel per sample, against a per-sample loop (values and gradients)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nnunet_msa.blocks.per_sample_conv import per_sample_conv, per_sample_depthwise_conv

FN = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


@pytest.mark.parametrize("shape,kernel", [((3, 4, 9, 8), (7, 7)), ((2, 2, 3, 4, 5), (3, 3, 3)),
                                          ((2, 2, 3, 4, 5), (1, 3, 5)), ((2, 3, 11), (5,)), ((1, 2, 4, 3), (3, 5))])
def test_depthwise_matches_a_per_sample_loop_and_gradcheck(shape, kernel):
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    w = torch.randn(shape[0], shape[1], *kernel, dtype=torch.float64, requires_grad=True)
    dim = len(kernel)
    pad = [(k - 1) // 2 for k in kernel]
    ref = torch.stack([FN[dim](x[b:b + 1], w[b].unsqueeze(1), None, 1, pad, 1, shape[1])[0]
                       for b in range(shape[0])])
    torch.testing.assert_close(per_sample_depthwise_conv(x, w), ref)
    assert torch.autograd.gradcheck(per_sample_depthwise_conv, (x, w), fast_mode=True)


def test_dense_per_sample_conv_matches_a_loop():
    torch.manual_seed(0)
    x = torch.randn(3, 4, 6, 5, dtype=torch.float64)
    k = torch.randn(3, 2, 4, 5, 5, dtype=torch.float64)
    ref = torch.stack([F.conv2d(x[b:b + 1], k[b], None, 1, 2)[0] for b in range(3)])
    torch.testing.assert_close(per_sample_conv(x, k, (2, 2)), ref)


def test_bfloat16_autocast_and_bad_shapes():
    x = torch.randn(2, 3, 8, 8)
    w = torch.randn(2, 3, 7, 7, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = per_sample_depthwise_conv(x.bfloat16(), w)
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert w.grad is not None and w.grad.dtype == torch.float32
    with pytest.raises(ValueError, match="do not fit"):
        per_sample_depthwise_conv(x, torch.randn(3, 3, 7, 7))
    with pytest.raises(ValueError, match="odd"):
        per_sample_depthwise_conv(x, torch.randn(2, 3, 4, 4))
