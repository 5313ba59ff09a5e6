"""fast_conv (polyphase dilation in 3D, channels-last depthwise, slice-wise (1, k, k) on CPU) gives F.conv's values and gradients."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nnunet_msa.blocks.fast_conv import fast_conv


@pytest.mark.parametrize("shape,wshape,dil,groups", [
    ((2, 4, 7, 9, 10), (5, 4, 3, 3, 3), (2, 2, 2), 1),
    ((1, 4, 5, 9, 8), (6, 4, 1, 3, 3), (1, 3, 3), 1),   # anisotropic: kernel 1 on z
    ((2, 4, 7, 9, 10), (4, 1, 3, 3, 3), (2, 2, 2), 4),  # depthwise, dilated
    ((2, 4, 7, 9, 10), (4, 1, 3, 3, 3), (1, 1, 1), 4),  # depthwise
    ((2, 3, 6, 6, 7), (3, 3, 3, 3, 3), (3, 1, 2), 1),   # mixed dilations, sizes not multiples of d
    ((2, 4, 5, 9, 8), (4, 1, 1, 3, 3), (1, 2, 2), 4),   # anisotropic depthwise, dilated: slice-wise 2D
    ((2, 4, 5, 9, 8), (4, 1, 1, 3, 3), (1, 1, 1), 4),   # anisotropic depthwise: slice-wise 2D
    ((2, 3, 9, 11), (4, 3, 3, 3), (2, 3), 1),           # 2D dense goes straight to F.conv2d
    ((2, 4, 9, 11), (4, 1, 3, 3), (1, 1), 4),           # 2D depthwise: channels-last
    ((2, 4, 9, 11), (4, 1, 3, 3), (3, 2), 4),           # 2D depthwise, dilated
])
def test_values_and_gradients_equal_f_conv(shape, wshape, dil, groups):
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    w = torch.randn(wshape, dtype=torch.float64, requires_grad=True)
    b = torch.randn(wshape[0], dtype=torch.float64, requires_grad=True)
    pad = [(k - 1) // 2 * d for k, d in zip(wshape[2:], dil)]
    conv = F.conv3d if len(shape) == 5 else F.conv2d
    ref = conv(x, w, b, 1, pad, dil, groups)
    out = fast_conv(x, w, b, pad, dil, groups)
    torch.testing.assert_close(out, ref)
    g_ref = torch.autograd.grad(ref.square().sum(), (x, w, b))
    g_out = torch.autograd.grad(out.square().sum(), (x, w, b))
    for a, c in zip(g_out, g_ref):
        torch.testing.assert_close(a, c)
    assert out.is_contiguous()
