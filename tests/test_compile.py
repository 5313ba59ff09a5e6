"""torch.compile (nnU-Net compiles the network by default on CUDA): ``torch.compile(network, fullgraph=True)`` traces
the MSA2 network without a graph break, 2D and 3D (anisotropic), and matches eager in forward and backward.

The aot_eager backend checks dynamo's tracing and AOT autograd's joint forward/backward graph (what inductor
compiles) without paying for inductor's C++ code generation. ``fullgraph=True`` turns any graph break into an error,
so no separate ``torch._dynamo.explain`` pass is needed (it would trace everything a second time); the compile
counter also catches a recompilation.

What the tests would catch: Python-side control flow or data-dependent shapes in SACM/MASAG/bridge/decoder (graph
break), checkpointing (``recompute=True``, the trainer's default) that dynamo or AOT autograd cannot trace, a
decomposition that changes results, a parameter that the compiled backward leaves without (finite) gradient.
- toy networks with the spec-literal ``{}`` options (``nnUNetTrainerMSA2Full``), 2D and anisotropic 3D;
- ``nnUNetTrainerMSA2.build_network_architecture`` (default options: separable SACM, recomputation) on real plans:
  hippocampus 2d and 3d_fullres, ACDC 3d_fullres (anisotropic, (1, 3, 3) kernels and (1, 2, 2) strides).
"""
from __future__ import annotations

import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pytest
import torch
from torch import nn
from torch._dynamo.testing import CompileCounterWithBackend

from nnunet_msa.network.msa2_unet import MSA2UNet

D2 = (nn.Conv2d, nn.InstanceNorm2d, [[3, 3]] * 3, [[1, 1], [2, 2], [2, 2]], (16, 12))
D3 = (nn.Conv3d, nn.InstanceNorm3d, [[1, 3, 3], [3, 3, 3], [3, 3, 3]], [[1, 1, 1], [1, 2, 2], [2, 2, 2]], (4, 16, 12))

#: (dataset ID of the ``planned`` fixture, configuration, patch or None for the planned one, batch size). ACDC's
#: planned 3d_fullres patch (10, 256, 224) costs minutes under aot_eager on 2 CPU cores: its planned z extent with a
#: quarter of the in-plane size, divisible by the strides (2, 32, 32), traces the same graph.
REAL_PLANS: List[Tuple[str, str, Optional[Tuple[int, ...]], int]] = [
    ("4", "2d", None, 2),
    ("4", "3d_fullres", None, 1),
    ("27", "3d_fullres", (10, 64, 64), 1),
]


@pytest.mark.parametrize("conv,norm,kernels,strides,size,options", [
    (*D2, {}), (*D3, {}),  # spec-literal (nnUNetTrainerMSA2Full); the default options: the real-plan test below
    (*D2, {"sacm_realization": "bottleneck", "sacm_fingerprint": "input"}),  # the kernel form by input scales
], ids=["2d-full", "3d-full", "2d-bottleneck"])
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


def _planned_network(folder: str, configuration: str) -> Tuple[nn.Module, object, int]:
    """(``nnUNetTrainerMSA2``'s network for a configuration of real plans, its configuration manager, input
    channels)."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    from nnunet_msa.training.nnunet_trainer_msa2 import nnUNetTrainerMSA2

    with open(os.path.join(folder, "dataset.json")) as f:
        dataset_json = json.load(f)
    pm = PlansManager(os.path.join(folder, "nnUNetPlans.json"))
    cm = pm.get_configuration(configuration)
    channels = len(dataset_json["channel_names"])
    torch.manual_seed(0)
    network = nnUNetTrainerMSA2.build_network_architecture(
        pm, cm, channels, pm.get_label_manager(dataset_json).num_segmentation_heads, True)
    return network, cm, channels


def _probe_loss(outputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """A fixed random projection of every deep-supervision output: each logit gets its own gradient."""
    g = torch.Generator().manual_seed(0)
    return sum((o * torch.randn(o.shape, generator=g)).sum() for o in outputs)


def _grads(network: nn.Module) -> Dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in network.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("dataset_id,configuration,patch,batch", REAL_PLANS,
                         ids=["hippocampus-2d", "hippocampus-3d_fullres", "acdc-3d_fullres"])
def test_fullgraph_compile_of_the_planned_network(planned, dataset_id: str, configuration: str,
                                                  patch: Optional[Tuple[int, ...]], batch: int) -> None:
    """The trainer's network from real plans compiles as one graph; every deep-supervision output and every
    parameter gradient equals eager."""
    torch._dynamo.reset()
    net, cm, channels = _planned_network(planned[dataset_id], configuration)
    patch = tuple(patch or cm.patch_size)
    total_stride = np.prod(np.array(cm.pool_op_kernel_sizes), axis=0)
    assert all(p % s == 0 for p, s in zip(patch, total_stride)), f"patch {patch} not divisible by {total_stride}"
    x = torch.randn(batch, channels, *patch, generator=torch.Generator().manual_seed(1))

    eager = net(x)
    assert isinstance(eager, (list, tuple)) and len(eager) == len(cm.pool_op_kernel_sizes) - 1
    _probe_loss(eager).backward()
    eager_out, eager_grads = [o.detach() for o in eager], _grads(net)
    net.zero_grad(set_to_none=True)

    counter = CompileCounterWithBackend("aot_eager")
    out = torch.compile(net, fullgraph=True, backend=counter)(x)
    assert counter.frame_count == 1, f"{counter.frame_count} graphs compiled, expected exactly one"
    assert len(out) == len(eager_out)
    for i, (a, b) in enumerate(zip(out, eager_out)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=lambda m: f"output {i}: {m}")

    _probe_loss(out).backward()
    grads = _grads(net)
    missing = [n for n, p in net.named_parameters() if p.requires_grad and n not in grads]
    assert not missing, f"no gradient for {missing}"
    non_finite = [n for n, g in grads.items() if not torch.isfinite(g).all()]
    assert not non_finite, f"non-finite gradients in {non_finite}"
    scale = max(float(g.abs().max()) for g in eager_grads.values())
    for name, g in eager_grads.items():
        torch.testing.assert_close(grads[name], g, rtol=1e-4, atol=1e-5 * scale, msg=lambda m: f"{name}: {m}")
