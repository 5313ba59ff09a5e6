"""The ablation trainers and the training-length variants (issue 4): each builds its network from real plans
(hippocampus and ACDC, 2d and 3d_fullres, nnU-Net's default and ResEnc plans) with the module it ablates removed
and nothing else changed, and nnU-Net's own trainer lookup finds every one by name with the right length."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from dynamic_network_architectures.building_blocks.unet_decoder import UNetDecoder
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunet_msa.blocks.masag import MASAG
from nnunet_msa.blocks.ms_conv_bridge import MSConvBridge
from nnunet_msa.blocks.sacm import SACM
from nnunet_msa.network.bridged_unet_decoder import BridgedUNetDecoder
from nnunet_msa.network.msa2_unet import MSA2UNet
from nnunet_msa.pipeline.environment import nnunet_env
from nnunet_msa.training import (ABLATION_TRAINERS, EPOCH_VARIANTS, nnUNetTrainerMSA2, nnUNetTrainerMSA2_bridgeOnly,
                                 nnUNetTrainerMSA2_noBridge, nnUNetTrainerMSA2_noMASAG, nnUNetTrainerMSA2_noSACM,
                                 nnUNetTrainerMSA2_noTempAnneal)


def _count(net, kind) -> int:
    return sum(isinstance(m, kind) for m in net.modules())


def _plans(folder: str, plans_name: str):
    pm = PlansManager(os.path.join(folder, f"{plans_name}.json"))
    with open(os.path.join(folder, "dataset.json")) as f:
        dataset_json = json.load(f)
    return pm, pm.get_label_manager(dataset_json).num_segmentation_heads


def _smallest_patch(cm) -> list:
    return [int(2 * np.prod(a)) for a in zip(*cm.pool_op_kernel_sizes)]


@pytest.mark.parametrize("dataset_id,plans_name", [("4", "nnUNetPlans"), ("27", "nnUNetPlans"),
                                                   ("27", "nnUNetResEncUNetMPlans")])
@pytest.mark.parametrize("configuration", ["2d", "3d_fullres"])
def test_each_ablation_removes_exactly_its_module(planned, dataset_id, plans_name, configuration):
    pm, heads = _plans(planned[dataset_id], plans_name)
    cm = pm.get_configuration(configuration)
    build = lambda t, ds=True: t.build_network_architecture(pm, cm, 1, heads, ds)  # noqa: E731
    base = build(nnUNetTrainerMSA2)
    nets = {t: build(t) for t in ABLATION_TRAINERS}
    assert _count(base, SACM) and _count(base, MASAG) and _count(base, MSConvBridge)

    no_bridge, no_masag, no_sacm = (nets[nnUNetTrainerMSA2_noBridge], nets[nnUNetTrainerMSA2_noMASAG],
                                    nets[nnUNetTrainerMSA2_noSACM])
    assert _count(no_bridge, MSConvBridge) == 0
    assert _count(no_bridge, MASAG) == _count(base, MASAG)
    assert _count(no_masag, MASAG) == 0 and _count(no_masag, MSConvBridge) == _count(base, MSConvBridge)
    assert _count(no_sacm, SACM) == 0
    assert _count(no_sacm, MASAG) == _count(base, MASAG)
    assert _count(no_sacm, MSConvBridge) == _count(base, MSConvBridge)  # the bridge stays, with static convs

    bridge_only = nets[nnUNetTrainerMSA2_bridgeOnly]
    assert isinstance(bridge_only.decoder, BridgedUNetDecoder) and isinstance(bridge_only.decoder, UNetDecoder)
    assert _count(bridge_only, MASAG) == 0
    assert _count(bridge_only, MSConvBridge) == _count(base, MSConvBridge)
    assert _count(bridge_only.decoder.stages, SACM) == 0  # nnU-Net's own decoder convs
    # the encoder is the planned one and identical in every variant
    enc = {k: v for k, v in base.state_dict().items() if k.startswith("encoder.")}
    for t, net in nets.items():
        assert isinstance(net, MSA2UNet)
        assert {k: v.shape for k, v in net.state_dict().items() if k.startswith("encoder.")} == \
               {k: v.shape for k, v in enc.items()}, t.__name__
    # noTempAnneal differs only in its schedule
    assert nnUNetTrainerMSA2_noTempAnneal.anneal_temperature is False
    assert nets[nnUNetTrainerMSA2_noTempAnneal].state_dict().keys() == base.state_dict().keys()

    # every variant: nnU-Net's deep-supervision outputs, and a strict weight load into the predictor's network; run on
    # hippocampus (2d, 3d_fullres) and ACDC 2d: the shape code is dimension-generic, ACDC's large 3D networks took
    # most of this test's time (127 s on CI for ResEnc alone), and tests/test_any_valid_plans.py runs 3D ResEnc corners
    if (dataset_id, configuration) == ("27", "3d_fullres"):
        return
    patch = _smallest_patch(cm)
    scales = list(list(i) for i in 1 / np.cumprod(np.vstack(cm.pool_op_kernel_sizes), axis=0))[:-1]
    x = torch.randn(1, 1, *patch)
    for t, net in nets.items():
        net.eval()
        with torch.no_grad():
            out = net(x)
        assert len(out) == len(scales), t.__name__
        for o, s in zip(out, scales):
            assert list(o.shape) == [1, heads] + [round(p * f) for p, f in zip(patch, s)], t.__name__
        inference = build(t, False)
        inference.load_state_dict(net.state_dict(), strict=True)
        with torch.no_grad():
            assert list(inference.eval()(x).shape) == [1, heads] + patch
        assert net.compute_conv_feature_map_size(cm.patch_size) > 0


def test_bridged_decoder_is_nnunets_decoder_on_bridged_skips(planned):
    """bridgeOnly's decoder computes exactly nnU-Net's UNetDecoder on the bridge outputs (same weights)."""
    pm, heads = _plans(planned["4"], "nnUNetPlans")
    cm = pm.get_configuration("2d")
    net = nnUNetTrainerMSA2_bridgeOnly.build_network_architecture(pm, cm, 1, heads, True).eval()
    plain = UNetDecoder(net.encoder, heads, cm.network_arch_init_kwargs["n_conv_per_stage_decoder"], True)
    plain.load_state_dict({k: v for k, v in net.decoder.state_dict().items()
                           if not k.startswith(("bridges.", "encoder."))}, strict=False)
    plain.eval()
    x = torch.randn(2, 1, *_smallest_patch(cm))
    with torch.no_grad():
        skips = net.encoder(x)
        bridged = list(skips)
        for s, bridge in enumerate(net.decoder.bridges):
            bridged[-(s + 2)] = bridge(skips[-(s + 2)])
        expected = plain(bridged)
        got = net(x)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)


def test_bridged_decoder_rejects_gates():
    from torch import nn
    with pytest.raises(ValueError, match="use_masag=False"):
        MSA2UNet(1, 3, [8, 16, 32], nn.Conv2d, 3, [1, 2, 2], 2, 1, n_conv_per_stage=1, decoder="nnunet")
    with pytest.raises(ValueError, match="decoder must be one of"):
        MSA2UNet(1, 3, [8, 16, 32], nn.Conv2d, 3, [1, 2, 2], 2, 1, n_conv_per_stage=1, decoder="unetr")


def test_nnunet_lookup_finds_every_variant_with_its_length(planned, tmp_path):
    """In a fresh process with only ``nnUNet_extTrainer`` pointing at us, nnU-Net's own lookup finds each trainer by
    name; the epoch variants construct (nnU-Net's __init__, CPU) with ``num_epochs`` N and the MSA2 network."""
    from nnunet_msa.pipeline.trainers_path import trainers_path

    env = nnunet_env(str(tmp_path), extra={"nnUNet_preprocessed": os.path.dirname(planned["4"])})
    env["nnUNet_extTrainer"] = trainers_path()
    names = [t.__name__ for t in ABLATION_TRAINERS] + [f"nnUNetTrainerMSA2_{n}epochs" for n in EPOCH_VARIANTS]
    code = f"""
import json, torch
from batchgenerators.utilities.file_and_folder_operations import join, load_json
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
pre = {planned['4']!r}
plans, dj = load_json(join(pre, 'nnUNetPlans.json')), load_json(join(pre, 'dataset.json'))
out = {{}}
for name in {names!r}:
    cls = recursive_find_trainer_class_by_name(name)
    t = cls(dict(plans, continue_training=False), '2d', 0, dj, torch.device('cpu')) if name.endswith('epochs') else None
    out[name] = [cls.__name__, t.num_epochs if t else None, [b.__name__ for b in cls.__mro__]]
print('RESULT' + json.dumps(out))
"""
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    found = json.loads(proc.stdout.split("RESULT", 1)[1])
    for name in names:
        cls_name, epochs, mro = found[name]
        assert cls_name == name and "nnUNetTrainerMSA2" in mro and "nnUNetTrainer" in mro
    for n in EPOCH_VARIANTS:
        assert found[f"nnUNetTrainerMSA2_{n}epochs"][1] == n
