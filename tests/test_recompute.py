"""Recomputation (``recompute=True``) changes memory and time, never the numbers: outputs and every gradient of the
SACM blocks, MASAG and the whole network equal those without it; inference runs without checkpointing."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from nnunet_msa.blocks.adaptive_conv_block import AdaptiveConvNormAct
from nnunet_msa.blocks.masag import MASAG
from nnunet_msa.blocks.multiscale_conv import MultiScaleConvConfig
from nnunet_msa.network.msa2_unet import MSA2UNet

NORM = dict(norm_op=nn.InstanceNorm2d, norm_op_kwargs={"eps": 1e-5, "affine": True})
ACT = dict(nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True})


def _grads(module: nn.Module, inputs):
    out = module(*inputs)
    loss = (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum()
    loss.backward()
    return out.detach(), [p.grad.clone() for p in module.parameters()] + [i.grad.clone() for i in inputs]


def _compare(make, inputs_fn):
    results = []
    for recompute in (False, True):
        torch.manual_seed(0)
        module = make().double()
        module.recompute = recompute
        inputs = [t.clone().requires_grad_() for t in inputs_fn()]
        results.append(_grads(module, inputs))
    (o0, g0), (o1, g1) = results
    torch.testing.assert_close(o1, o0)
    assert len(g0) == len(g1)
    for a, b in zip(g0, g1):
        torch.testing.assert_close(b, a)


@pytest.mark.parametrize("realization", ["dilated", "separable"])
def test_sacm_block_same_values_and_gradients(realization):
    torch.manual_seed(1)
    x = torch.randn(3, 6, 12, 10, dtype=torch.float64)
    _compare(lambda: AdaptiveConvNormAct(nn.Conv2d, 6, 4, 3, MultiScaleConvConfig(realization=realization), True, **NORM,
                                         dropout_op=nn.Dropout2d, dropout_op_kwargs={"p": 0.3}, **ACT),
             lambda: [x])


def test_masag_same_values_and_gradients():
    torch.manual_seed(2)
    x, g = torch.randn(2, 5, 9, 8, dtype=torch.float64), torch.randn(2, 5, 9, 8, dtype=torch.float64)
    _compare(lambda: MASAG(nn.Conv2d, 5, 3, **NORM, **ACT), lambda: [x, g])


def _net(recompute: bool) -> MSA2UNet:
    torch.manual_seed(0)
    net = MSA2UNet(1, 3, [4, 8, 16], nn.Conv3d, [[1, 3, 3], [3, 3, 3], [3, 3, 3]], [1, [1, 2, 2], 2], 3,
                   [1, 1], n_conv_per_stage=[1, 1, 1], conv_bias=True,
                   norm_op=nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True}, **ACT,
                   deep_supervision=True, sacm_realization="separable", n_bridge=1, recompute=recompute)
    net.apply(net.initialize)
    return net


def test_network_same_values_gradients_and_smaller_estimate():
    x = torch.randn(2, 1, 6, 16, 12)
    nets = [_net(False), _net(True)]
    assert nets[1].compute_conv_feature_map_size((6, 16, 12)) < nets[0].compute_conv_feature_map_size((6, 16, 12))
    outs, grads = [], []
    for net in nets:
        out = net(x)
        sum(o.square().mean() for o in out).backward()
        outs.append([o.detach() for o in out])
        grads.append([p.grad for p in net.parameters()])
    for a, b in zip(*outs):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-5)


def test_inference_does_not_checkpoint(monkeypatch):
    import nnunet_msa.blocks.recompute as rc

    calls = []
    monkeypatch.setattr(rc, "checkpoint", lambda *a, **k: calls.append(1) or a[0](*a[1:]))
    net = _net(True).eval()
    with torch.no_grad():
        net(torch.randn(1, 1, 6, 16, 12))
    assert calls == []
    net.train()
    net(torch.randn(1, 1, 6, 16, 12))
    assert calls, "training with recompute=True must go through torch.utils.checkpoint"


def test_low_memory_trainer_is_the_default_network_recomputed():
    """``nnUNetTrainerMSA2_lowMemory`` (for GPUs that nnU-Net's plans fill) differs from the default only in
    ``recompute``: the same outputs and gradients in float64, a smaller planner estimate; exported for nnU-Net."""
    from nnunet_msa.training import nnUNetTrainerMSA2, nnUNetTrainerMSA2_lowMemory

    default, low = nnUNetTrainerMSA2.msa2_options, nnUNetTrainerMSA2_lowMemory.msa2_options
    assert {k: v for k, v in low.items() if k != "recompute"} == {k: v for k, v in default.items() if k != "recompute"}
    assert low["recompute"] is True and default["recompute"] != True  # noqa: E712 ("gates" is truthy)
    nets = []
    for options in (default, low):
        torch.manual_seed(0)
        net = MSA2UNet(1, 4, [4, 8, 16, 16], nn.Conv2d, 3, [1, 2, 2, 2], 2, [1, 1, 1], n_conv_per_stage=[1, 1, 1, 1],
                       conv_bias=True, norm_op=nn.InstanceNorm2d, norm_op_kwargs={"eps": 1e-5, "affine": True},
                       **ACT, deep_supervision=True, **options)
        net.apply(net.initialize)
        nets.append(net.double())
    assert nets[1].compute_conv_feature_map_size((32, 24)) < nets[0].compute_conv_feature_map_size((32, 24))
    x = torch.randn(2, 1, 32, 24, dtype=torch.float64)
    outs, grads = [], []
    for net in nets:
        out = net(x)
        sum(o.square().mean() for o in out).backward()
        outs.append([o.detach() for o in out])
        grads.append([p.grad for p in net.parameters()])
    for a, b in zip(*outs):
        torch.testing.assert_close(b, a)
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a)
    import nnunet_msa.training as training

    assert "nnUNetTrainerMSA2_lowMemory" in training.__all__  # re-exported by trainers/ for nnUNet_extTrainer
