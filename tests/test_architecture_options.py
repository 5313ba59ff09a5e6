"""Every option of issue 7 (skip gates, multi-scale convs, MLFD, the QTSeg decoder) and every named trainer builds
its network from real plans (hippocampus 2d and 3d_fullres, ACDC 3d_fullres with its anisotropic (1, 3, 3)
kernels; ACDC ResEnc for the encoder-dependent MLFD and QTSeg decoder), trains (every parameter gets a gradient, the loss falls on a fixed batch), gives nnU-Net's
deep-supervision outputs, loads strictly into the predictor's network, and nnU-Net's own lookup finds the trainers."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunet_msa.blocks.attention_gate import AttentionGate
from nnunet_msa.blocks.caf_gate import ContextAwareFusion
from nnunet_msa.blocks.cbam import CBAM
from nnunet_msa.blocks.dmk_conv import DepthwiseMultiKernelConv
from nnunet_msa.blocks.dual_mix_attention import DualMixAttention
from nnunet_msa.blocks.masag import MASAG
from nnunet_msa.blocks.mlfd import MultiLevelFeatureDistribution
from nnunet_msa.blocks.sacm import SACM
from nnunet_msa.blocks.selective_kernel import SelectiveKernelConv
from nnunet_msa.blocks.squeeze_excitation import SqueezeExcitation
from nnunet_msa.network.msa2_unet import MSA2UNet
from nnunet_msa.network.qtseg_decoder import QTSegDecoder
from nnunet_msa.pipeline.environment import nnunet_env
from nnunet_msa.training import (ARCHITECTURE_TRAINERS, make_architecture_trainer, nnUNetTrainerAttnGate,
                                 nnUNetTrainerCBAM, nnUNetTrainerFIAS, nnUNetTrainerQTSeg, nnUNetTrainerSE,
                                 nnUNetTrainerSelectiveKernel)
from nnunet_msa.training.network_from_plans import build_msa2_network

OPTIONS = {
    "gate_caf": ({"skip_gate": "caf"}, ContextAwareFusion),
    "gate_attention_gate": ({"skip_gate": "attention_gate"}, AttentionGate),
    "gate_cbam": ({"skip_gate": "cbam"}, CBAM),
    "gate_se": ({"skip_gate": "se"}, SqueezeExcitation),
    "gate_none": ({"skip_gate": "none"}, None),
    "conv_dmk": ({"multiscale_conv": "dmk"}, DepthwiseMultiKernelConv),
    "conv_selective_kernel": ({"multiscale_conv": "selective_kernel"}, SelectiveKernelConv),
    "conv_static": ({"multiscale_conv": "static"}, None),
    "mlfd": ({"skip_redistribution": "mlfd"}, MultiLevelFeatureDistribution),
    "decoder_qtseg": ({"decoder": "qtseg", "recompute": True}, DualMixAttention),
}
PLANS = [("4", "nnUNetPlans", "2d"), ("4", "nnUNetPlans", "3d_fullres"), ("27", "nnUNetPlans", "3d_fullres")]
#: the options that depend on the encoder's outputs beyond their channels and strides also run on ResEnc plans
RESENC = ("27", "nnUNetResEncUNetMPlans", "2d")
#: on ACDC's anisotropic 3D plans, the options whose kernels or resampling follow the plans' per-axis kernels/strides
ANISOTROPIC = ("gate_caf", "gate_cbam", "conv_dmk", "conv_selective_kernel", "mlfd", "decoder_qtseg")
CASES = [(*plan, option) for plan in PLANS[:2] for option in sorted(OPTIONS)]
CASES += [(*PLANS[2], option) for option in ANISOTROPIC]
CASES += [(*RESENC, option) for option in ("mlfd", "decoder_qtseg")]
TRAINER_MODULES = {nnUNetTrainerFIAS: (DepthwiseMultiKernelConv, ContextAwareFusion),
                   nnUNetTrainerQTSeg: (MultiLevelFeatureDistribution, DualMixAttention),
                   nnUNetTrainerAttnGate: (AttentionGate,), nnUNetTrainerCBAM: (CBAM,),
                   nnUNetTrainerSE: (SqueezeExcitation,), nnUNetTrainerSelectiveKernel: (SelectiveKernelConv, MASAG)}


def _plans(folder: str, plans_name: str):
    pm = PlansManager(os.path.join(folder, f"{plans_name}.json"))
    with open(os.path.join(folder, "dataset.json")) as f:
        dataset_json = json.load(f)
    return pm, pm.get_label_manager(dataset_json).num_segmentation_heads


def _smallest_patch(cm) -> list:
    return [int(2 * np.prod(a)) for a in zip(*cm.pool_op_kernel_sizes)]


def _count(net, kind) -> int:
    return sum(isinstance(m, kind) for m in net.modules())


def _check_trains_and_predicts(net, build_inference, cm, heads, label: str) -> None:
    """nnU-Net's DS outputs; every parameter gets a finite gradient; 2 SGD steps on one batch lower the loss;
    strict load into the predictor's (no DS) network, whose output has the patch's shape."""
    patch = _smallest_patch(cm)
    scales = list(list(i) for i in 1 / np.cumprod(np.vstack(cm.pool_op_kernel_sizes), axis=0))[:-1]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 1, *patch, generator=g)
    target = torch.randint(0, heads, (1, *patch), generator=g)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for step in range(2):
        out = net(x)
        assert len(out) == len(scales), label
        for o, s in zip(out, scales):
            assert list(o.shape) == [1, heads] + [round(p * f) for p, f in zip(patch, s)], label
        loss = sum(torch.nn.functional.cross_entropy(o, torch.nn.functional.interpolate(
            target[:, None].float(), size=o.shape[2:], mode="nearest")[:, 0].long()) for o in out)  # every DS head
        opt.zero_grad()
        loss.backward()
        if step == 0:
            missing = [n for n, p in net.named_parameters() if p.grad is None]
            assert not missing, f"{label}: parameters without gradient (DDP would fail): {missing[:5]}"
            assert all(torch.isfinite(p.grad).all() for p in net.parameters()), label
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0], f"{label}: loss did not fall on a fixed batch: {losses}"
    inference = build_inference()
    inference.load_state_dict(net.state_dict(), strict=True)
    with torch.no_grad():
        assert list(inference.eval()(x).shape) == [1, heads] + patch, label
    assert net.compute_conv_feature_map_size(cm.patch_size) > 0


@pytest.mark.parametrize("dataset_id,plans_name,configuration,option", CASES)
def test_every_option_builds_from_real_plans_and_trains(planned, dataset_id, plans_name, configuration, option):
    pm, heads = _plans(planned[dataset_id], plans_name)
    cm = pm.get_configuration(configuration)
    options, module = OPTIONS[option]
    torch.manual_seed(0)
    build = lambda ds: build_msa2_network(cm, 1, heads, ds, **options)  # noqa: E731
    net = build(True)
    if module is not None:
        assert _count(net, module) > 0, f"{option}: no {module.__name__} in the network"
    if option == "gate_none":
        assert _count(net, MASAG) == 0 and net.decoder.gates is None
    if option == "conv_static":
        assert _count(net, SACM) == 0 and _count(net, (DepthwiseMultiKernelConv, SelectiveKernelConv)) == 0
    if option.startswith("gate_") and option != "gate_none":
        assert _count(net, MASAG) == 0, f"{option} must replace MASAG, not add to it"
    if option.startswith("conv_") and option != "conv_static":
        assert _count(net, SACM) == 0, f"{option} must replace SACM"
    if option == "decoder_qtseg":
        assert isinstance(net.decoder, QTSegDecoder) and not hasattr(net.decoder, "seg_layers")
        assert all(d.recompute for d in net.decoder.dma)
    # the encoder is nnU-Net's planned one whatever the option
    base = build_msa2_network(cm, 1, heads, True)
    assert {k: v.shape for k, v in net.state_dict().items() if k.startswith("encoder.")} == \
           {k: v.shape for k, v in base.state_dict().items() if k.startswith("encoder.")}
    _check_trains_and_predicts(net, lambda: build(False), cm, heads, f"{option} on {plans_name} {configuration}")


@pytest.mark.parametrize("trainer", ARCHITECTURE_TRAINERS, ids=lambda t: t.__name__)
def test_named_trainers_build_their_papers_modules(planned, trainer):
    """Each named trainer's network on the hippocampus 3d plans (every option it combines also runs on 2D and
    anisotropic 3D plans above, and the trainer itself through the real commands in test_e2e_architectures.py)."""
    configuration = "3d_fullres"
    pm, heads = _plans(planned["4"], "nnUNetPlans")
    cm = pm.get_configuration(configuration)
    torch.manual_seed(0)
    net = trainer.build_network_architecture(pm, cm, 1, heads, True)
    assert isinstance(net, MSA2UNet)
    for module in TRAINER_MODULES[trainer]:
        assert _count(net, module) > 0, f"{trainer.__name__}: no {module.__name__}"
    if trainer is not nnUNetTrainerSelectiveKernel:
        assert _count(net, MASAG) == 0 and _count(net, SACM) == 0, trainer.__name__
    assert trainer.anneal_temperature is False
    _check_trains_and_predicts(net, lambda: trainer.build_network_architecture(pm, cm, 1, heads, False), cm, heads,
                               f"{trainer.__name__} on {configuration}")


def test_bad_options_fail_naming_the_choices():
    from torch import nn
    args = (1, 3, [8, 16, 32], nn.Conv2d, 3, [1, 2, 2], 2, 1)
    with pytest.raises(ValueError, match="skip_gate must be one of"):
        MSA2UNet(*args, n_conv_per_stage=1, skip_gate="cbma")
    with pytest.raises(ValueError, match="multiscale_conv must be one of"):
        MSA2UNet(*args, n_conv_per_stage=1, multiscale_conv="inception")
    with pytest.raises(ValueError, match="skip_redistribution must be one of"):
        MSA2UNet(*args, n_conv_per_stage=1, skip_redistribution="fpn")
    with pytest.raises(ValueError, match="no skip gates"):
        MSA2UNet(*args, n_conv_per_stage=1, decoder="nnunet", skip_gate="cbam")
    with pytest.raises(ValueError, match="unknown MSA2UNet option"):
        make_architecture_trainer("nnUNetTrainerX", __name__, skipgate="cbam")


def test_options_from_the_plans_reach_the_network(planned):
    """A plans configuration naming MSA2UNet with the options in arch_kwargs builds them (the route that needs no
    trainer class: nnU-Net's predictor reads the same plans)."""
    pm, heads = _plans(planned["4"], "nnUNetPlans")
    cm = pm.get_configuration("2d")
    cm.configuration["architecture"] = {
        "network_class_name": "nnunet_msa.network.msa2_unet.MSA2UNet",
        "arch_kwargs": {**cm.network_arch_init_kwargs, "encoder": "plain", "skip_gate": "cbam",
                        "multiscale_conv": "selective_kernel"},
        "_kw_requires_import": cm.network_arch_init_kwargs_req_import}
    net = build_msa2_network(cm, 1, heads, True)
    assert _count(net, CBAM) > 0 and _count(net, SelectiveKernelConv) > 0 and _count(net, MASAG) == 0


def test_nnunet_lookup_finds_every_architecture_trainer(planned, tmp_path):
    """In a fresh process with only ``nnUNet_extTrainer`` pointing at us, nnU-Net's own lookup finds each named
    trainer and its budget variant, and constructs it (nnU-Net's __init__, CPU)."""
    from nnunet_msa.pipeline.trainers_path import trainers_path

    env = nnunet_env(str(tmp_path), extra={"nnUNet_preprocessed": os.path.dirname(planned["4"])})
    env["nnUNet_extTrainer"] = trainers_path()
    names = [t.__name__ for t in ARCHITECTURE_TRAINERS] + [f"{t.__name__}_budget" for t in ARCHITECTURE_TRAINERS]
    code = f"""
import json, torch
from batchgenerators.utilities.file_and_folder_operations import join, load_json
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
pre = {planned['4']!r}
plans, dj = load_json(join(pre, 'nnUNetPlans.json')), load_json(join(pre, 'dataset.json'))
out = {{}}
for name in {names!r}:
    cls = recursive_find_trainer_class_by_name(name)
    t = cls(dict(plans, continue_training=False), '2d', 0, dj, torch.device('cpu'))
    out[name] = [cls.__name__, [b.__name__ for b in cls.__mro__]]
print('RESULT' + json.dumps(out))
"""
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    found = json.loads(proc.stdout.split("RESULT", 1)[1])
    for name in names:
        assert found[name][0] == name and "nnUNetTrainer" in found[name][1], name
