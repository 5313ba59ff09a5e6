"""The MSA2 network builds from real nnU-Net plans (hippocampus: isotropic; ACDC: thick slices, anisotropic kernels;
default and ResEnc planners) and its outputs match nnU-Net's deep-supervision scales."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunet_msa.blocks.sacm import SACM
from nnunet_msa.network.msa2_unet import MSA2UNet
from nnunet_msa.training.network_from_plans import PlansError, build_msa2_network
from nnunet_msa.training.nnunet_trainer_msa2 import nnUNetTrainerMSA2

from conftest import NNUNET_PLANNERS as PLANNERS


def _configs(folder: str, plans_name: str):
    plans = json.load(open(os.path.join(folder, f"{plans_name}.json")))
    dataset = json.load(open(os.path.join(folder, "dataset.json")))
    pm = PlansManager(plans)
    return pm, dataset, [c for c in ("2d", "3d_fullres") if c in plans["configurations"]]


@pytest.mark.parametrize("dataset_id", ["4", "27"])
@pytest.mark.parametrize("plans_name", list(PLANNERS))
def test_builds_from_real_plans_with_deep_supervision_scales(planned, dataset_id, plans_name):
    pm, dataset_json, configs = _configs(planned[dataset_id], plans_name)
    assert configs, "the planner produced no 2d/3d_fullres configuration"
    lm = pm.get_label_manager(dataset_json)
    for c in configs:
        cm = pm.get_configuration(c)
        net = nnUNetTrainerMSA2.build_network_architecture(pm, cm, 1, lm.num_segmentation_heads, True)
        assert isinstance(net, MSA2UNet)
        expected_encoder = "residual" if "ResidualEncoderUNet" in cm.network_arch_class_name else "plain"
        assert net.encoder_type == expected_encoder
        # the smallest input the plans' strides allow, twice over (the planned patch behaves the same, only slower)
        patch = [int(2 * np.prod(a)) for a in zip(*cm.pool_op_kernel_sizes)]
        # nnU-Net's deep-supervision scales, exactly as nnUNetTrainer._get_deep_supervision_scales computes them
        scales = list(list(i) for i in 1 / np.cumprod(np.vstack(cm.pool_op_kernel_sizes), axis=0))[:-1]
        net.eval()
        with torch.no_grad():
            out = net(torch.randn(1, 1, *patch))
        assert isinstance(out, list) and len(out) == len(scales)
        for o, s in zip(out, scales):
            assert list(o.shape) == [1, lm.num_segmentation_heads] + [round(p * f) for p, f in zip(patch, s)]
        # the predictor builds with deep supervision off and loads the trained weights strictly
        net_inf = nnUNetTrainerMSA2.build_network_architecture(pm, cm, 1, lm.num_segmentation_heads, False)
        net_inf.load_state_dict(net.state_dict(), strict=True)
        net_inf.eval()
        with torch.no_grad():
            single = net_inf(torch.randn(1, 1, *patch))
        assert torch.is_tensor(single) and list(single.shape) == [1, lm.num_segmentation_heads] + patch
        # nnU-Net's own switch
        net.decoder.deep_supervision = False
        with torch.no_grad():
            assert torch.is_tensor(net(torch.randn(1, 1, *patch)))
        # the planner's memory proxy is implemented and exceeds the default network's
        assert net.compute_conv_feature_map_size(patch) > 0


def test_acdc_3d_plans_are_anisotropic_and_sacm_keeps_kernel_one_axes(planned):
    pm, dataset_json, _ = _configs(planned["27"], "nnUNetPlans")
    cm = pm.get_configuration("3d_fullres")
    kernels = cm.network_arch_init_kwargs["kernel_sizes"]
    assert any(1 in k for k in kernels), f"expected anisotropic kernels in ACDC 3d plans, got {kernels}"
    net = nnUNetTrainerMSA2.build_network_architecture(pm, cm, 1, 4, True)
    sacms = [m for m in net.modules() if isinstance(m, SACM)]
    assert sacms
    for m in sacms:
        for k, w in zip(m.kernel_size, m.embedded_kernels().shape[3:]):
            assert (k == 1) == (w == 1)


def test_options_switch_modules_off(planned):
    pm, _, _ = _configs(planned["4"], "nnUNetPlans")
    cm = pm.get_configuration("2d")
    full = build_msa2_network(cm, 1, 3, True)
    none = build_msa2_network(cm, 1, 3, True, use_bridge=False, use_masag=False, use_sacm=False)
    assert not any(isinstance(m, SACM) for m in none.modules())
    assert none.decoder.gates is None and all(isinstance(b, torch.nn.Identity) for b in none.decoder.bridges)
    assert sum(p.numel() for p in none.parameters()) < sum(p.numel() for p in full.parameters())


def test_bad_plans_give_clear_errors(planned):
    pm, _, _ = _configs(planned["4"], "nnUNetPlans")
    cm = pm.get_configuration("2d")
    plans = pm.plans
    broken = json.loads(json.dumps(plans))
    del broken["configurations"]["2d"]["architecture"]["arch_kwargs"]["kernel_sizes"]
    with pytest.raises(PlansError, match="kernel_sizes"):
        build_msa2_network(PlansManager(broken).get_configuration("2d"), 1, 3)
    other = json.loads(json.dumps(plans))
    other["configurations"]["2d"]["architecture"]["network_class_name"] = "some.module.SwinUNETR"
    with pytest.raises(PlansError, match="PlainConvUNet"):
        build_msa2_network(PlansManager(other).get_configuration("2d"), 1, 3)
    net = build_msa2_network(cm, 1, 3, False)
    with pytest.raises(ValueError, match="input channel"):
        net(torch.randn(1, 2, *cm.patch_size))
    with pytest.raises(ValueError, match="2D"):
        net(torch.randn(1, 1, 4, *cm.patch_size))


@pytest.mark.parametrize("labels,extra,heads", [
    ({"background": 0, "Anterior": 1, "Posterior": 2}, {}, 3),
    ({"background": 0, "whole": [1, 2], "posterior": 2}, {"regions_class_order": [1, 2]}, 2),
    ({"background": 0, "Anterior": 1, "Posterior": 2, "ignore": 3}, {}, 3),
])
def test_output_heads_follow_nnunets_label_manager(planned, labels, extra, heads):
    """Regions and ignore labels: the network has as many heads as nnU-Net's label manager reports."""
    pm, dataset_json, _ = _configs(planned["4"], "nnUNetPlans")
    dj = dict(dataset_json, labels=labels, **extra)
    lm = pm.get_label_manager(dj)
    assert lm.num_segmentation_heads == heads
    cm = pm.get_configuration("2d")
    net = nnUNetTrainerMSA2.build_network_architecture(pm, cm, 1, lm.num_segmentation_heads, False).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 1, 16, 16)).shape[1] == heads
