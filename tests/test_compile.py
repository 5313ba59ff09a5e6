"""torch.compile(fullgraph=True) traces the MSA2 network without a graph break, 2D and 3D (anisotropic), and
matches eager. The aot_eager backend checks tracing and autograd without paying for inductor's C++ codegen."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from nnunet_msa.network.msa2_unet import MSA2UNet
from nnunet_msa.training.nnunet_trainer_msa2 import BALANCED_OPTIONS

D2 = (nn.Conv2d, nn.InstanceNorm2d, [[3, 3]] * 3, [[1, 1], [2, 2], [2, 2]], (16, 12))
D3 = (nn.Conv3d, nn.InstanceNorm3d, [[1, 3, 3], [3, 3, 3], [3, 3, 3]], [[1, 1, 1], [1, 2, 2], [2, 2, 2]], (4, 16, 12))


@pytest.mark.parametrize("conv,norm,kernels,strides,size,options", [
    (*D2, {}), (*D3, {}),  # spec-literal (nnUNetTrainerMSA2Full)
    (*D2, BALANCED_OPTIONS), (*D3, BALANCED_OPTIONS),  # the default: separable, recomputation (checkpoint) inside
], ids=["2d-full", "3d-full", "2d-balanced", "3d-balanced"])
def test_fullgraph_compile_matches_eager(conv, norm, kernels, strides, size, options):
    torch._dynamo.reset()
    torch.manual_seed(0)
    net = MSA2UNet(1, 3, [8, 16, 32], conv, kernels, strides, 3, 1, n_conv_per_stage=1, norm_op=norm,
                   norm_op_kwargs={"affine": True}, nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True},
                   deep_supervision=True, **options)
    net.apply(net.initialize)
    x = torch.randn(2, 1, *size)
    eager = net(x)
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")
    out = compiled(x)
    for a, b in zip(out, eager):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    sum(o.sum() for o in out).backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
