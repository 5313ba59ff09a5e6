"""float16 autocast (nnU-Net's default on CUDA) at a 3D patch of 2^17 voxels, run on CPU (PyTorch runs float16
autocast there too): every architecture trainer's network computes finite values in every module.

A product or sum over the voxels of a feature map in half precision passes float16's 65504 at this size (QTSeg's
channel attention did: its Gram matrix's diagonal is about N = 131072 for unit-variance features), so this test
would catch such a block in any trainer's network, in the output or in any module's output on the way. The
widths are small (4 to 32 channels; CPU float16 convolutions are PyTorch's slow reference kernels): what overflows
is the spatial size, not the width.
"""
from __future__ import annotations

import math
from typing import List

import pytest
import torch

from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

import nnunet_msa.training as training

PATCH = [32, 64, 64]
assert math.prod(PATCH) >= 2 ** 17
TRAINERS = ["nnUNetTrainerMSA2", "nnUNetTrainerMSA2_fast", "nnUNetTrainerMSA2_lowMemory", "nnUNetTrainerMSA2Full",
            "nnUNetTrainerMSA2_v1"] + [t.__name__ for t in training.ARCHITECTURE_TRAINERS]


def _configuration() -> ConfigurationManager:
    """A 3d_fullres configuration as nnU-Net's planner writes one (4 stages, plain encoder), at ``PATCH``."""
    return ConfigurationManager({
        "data_identifier": "nnUNetPlans_fp16", "preprocessor_name": "DefaultPreprocessor", "batch_size": 1,
        "patch_size": PATCH, "spacing": [1.0, 1.0, 1.0],
        "architecture": {
            "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {
                "n_stages": 4, "features_per_stage": [4, 8, 16, 32], "conv_op": "torch.nn.modules.conv.Conv3d",
                "kernel_sizes": [[3, 3, 3]] * 4, "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]],
                "n_conv_per_stage": [2, 2, 2, 2], "n_conv_per_stage_decoder": [2, 2, 2], "conv_bias": True,
                "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-5, "affine": True},
                "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
                "nonlin_kwargs": {"inplace": True}},
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}})


def _tensors(value) -> List[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


@pytest.mark.parametrize("trainer", TRAINERS)
def test_float16_autocast_stays_finite_at_2_17_voxels(trainer: str) -> None:
    torch.manual_seed(0)
    cls = getattr(training, trainer)
    net = cls.build_network_architecture(None, _configuration(), 1, 3, True).eval()
    bad: List[str] = []

    def check(name: str):
        def hook(module, inputs, output) -> None:
            for t in _tensors(output):
                if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                    bad.append(f"{name} ({type(module).__name__}, {t.dtype}, {tuple(t.shape)})")
        return hook

    for name, module in net.named_modules():
        module.register_forward_hook(check(name or "network"))
    x = 3 * torch.randn(1, 1, *PATCH)   # a normalized MRI/CT patch with its bright tail
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):
        outputs = _tensors(net(x))
    assert outputs and any(t.dtype == torch.float16 for t in outputs), "autocast did not run in float16"
    assert not bad, f"non-finite values under float16 autocast in: {bad[:10]}"
