"""Any valid plans: the MSA2 network builds from random valid nnU-Net configurations and its outputs have exactly the
shapes of nnU-Net's own network built from the same configuration.

A configuration is drawn as nnU-Net's planners write one (``architecture`` with ``network_class_name`` and
``arch_kwargs``): 2-7 stages, 2D or 3D, per stage and axis a kernel of 1 or 3 and a stride of 1 or 2 (stage 0 always
stride 1, as the planners give), a plain (``PlainConvUNet``) or residual (``ResidualEncoderUNet``) encoder, 1-4 input
channels, 1-4 outputs, and the MSA2 options of ``nnUNetTrainerMSA2`` (``DEFAULT_OPTIONS``) or of
``nnUNetTrainerMSA2Full`` (``{}``, spec-literal). The oracle is nnU-Net: ``get_network_from_plans`` on the same
configuration, and ``nnUNetTrainer._get_deep_supervision_scales`` for the number and scales of the outputs.

Hypothesis runs derandomized and without an example database, so CI draws the same configurations every run; its
remaining cache (constants read from the source) goes to a temporary folder, so no ``.hypothesis`` folder is written
into the checkout.
"""
from __future__ import annotations

import atexit
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

from nnunet_msa.blocks.sacm import SACM
from nnunet_msa.network.msa2_unet import MSA2UNet
from nnunet_msa.planning.candidate_plan import plan_sacm_dilations
from nnunet_msa.training.network_from_plans import build_msa2_network
from nnunet_msa.training.nnunet_trainer_msa2 import DEFAULT_OPTIONS, nnUNetTrainerMSA2, nnUNetTrainerMSA2Full

# Hypothesis caches the constants of local modules under ./.hypothesis even with database=None, and its pytest plugin
# does so while collecting, before any fixture runs: point its storage at a temporary folder (removed at exit) when
# this module is imported, unless $HYPOTHESIS_STORAGE_DIRECTORY chooses one. It holds only that cache.
if not os.getenv("HYPOTHESIS_STORAGE_DIRECTORY"):
    _HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="nnunet_msa_hypothesis_")
    set_hypothesis_home_dir(_HYPOTHESIS_HOME)
    atexit.register(shutil.rmtree, _HYPOTHESIS_HOME, ignore_errors=True)

OPTIONS: Dict[str, Dict[str, Any]] = {"balanced": nnUNetTrainerMSA2.msa2_options,
                                      "spec": nnUNetTrainerMSA2Full.msa2_options}
NETWORK_CLASS = {"plain": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                 "residual": "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"}
#: At most this many stride-2 steps over all axes together (an axis stops being pooled beyond it, as nnU-Net's
#: planner stops pooling a small axis): the input stays <= 2**10 * 4 pixels (2D), 2**10 * 8 voxels (3D), which keeps
#: 36 examples of two networks, forward and backward, within seconds on 2 CPU cores.
MAX_POOLINGS = {2: 10, 3: 10}


@dataclass(frozen=True)
class Plan:
    """One drawn configuration (everything a plans file and the trainer decide) and the input it is run on."""

    dim: int
    encoder: str                                  # "plain" | "residual"
    kernels: Tuple[Tuple[int, ...], ...]          # per stage, per axis: 1 or 3
    strides: Tuple[Tuple[int, ...], ...]          # per stage, per axis: 1 or 2; stage 0 all 1
    n_per_stage: Tuple[int, ...]                  # n_conv_per_stage (plain) or n_blocks_per_stage (residual)
    n_conv_decoder: Tuple[int, ...]               # n_stages - 1 entries
    input_channels: int
    output_channels: int
    batch: int
    factors: Tuple[int, ...]                      # input size per axis = cumulative stride * factor
    options: str                                  # key of OPTIONS
    #: structure span (p10, p90 per axis, full-resolution voxels) the candidates are planned from, or None (fixed)
    extents: Optional[Tuple[Tuple[float, ...], Tuple[float, ...]]] = None

    @property
    def n_stages(self) -> int:
        return len(self.kernels)

    @property
    def patch(self) -> List[int]:
        """The smallest input the strides allow on each axis, times the factor: its bottleneck is ``factors``."""
        return [int(np.prod(axis)) * f for axis, f in zip(zip(*self.strides), self.factors)]

    def configuration(self) -> Dict[str, Any]:
        """The plans' configuration entry, as nnU-Net's (ResEnc) experiment planner writes it."""
        conv = "Conv2d" if self.dim == 2 else "Conv3d"
        n_key = "n_conv_per_stage" if self.encoder == "plain" else "n_blocks_per_stage"
        return {
            "data_identifier": "nnUNetPlans_hypothesis",
            "preprocessor_name": "DefaultPreprocessor",
            "batch_size": self.batch,
            "patch_size": self.patch,
            "spacing": [1.0] * self.dim,
            "architecture": {
                "network_class_name": NETWORK_CLASS[self.encoder],
                "arch_kwargs": {
                    "n_stages": self.n_stages,
                    "features_per_stage": [min(4 * 2 ** i, 32) for i in range(self.n_stages)],
                    "conv_op": f"torch.nn.modules.conv.{conv}",
                    "kernel_sizes": [list(k) for k in self.kernels],
                    "strides": [list(s) for s in self.strides],
                    n_key: list(self.n_per_stage),
                    "n_conv_per_stage_decoder": list(self.n_conv_decoder),
                    "conv_bias": True,
                    "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{self.dim}d",
                    "norm_op_kwargs": {"eps": 1e-5, "affine": True},
                    "dropout_op": None,
                    "dropout_op_kwargs": None,
                    "nonlin": "torch.nn.LeakyReLU",
                    "nonlin_kwargs": {"inplace": True},
                    **self.planned_candidates(),
                },
                "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
            },
        }

    def planned_candidates(self) -> Dict[str, Any]:
        """``sacm_dilations`` as the MSA2 planners write them (issue 19), when the plan has a structure span."""
        if self.extents is None:
            return {}
        k = int(OPTIONS[self.options].get("sacm_candidates", 3))
        return {"sacm_dilations": plan_sacm_dilations(self.kernels, self.strides, self.patch, self.extents[0],
                                                      self.extents[1], k)}


@st.composite
def plans(draw: st.DrawFn, dim: int) -> Plan:
    """A valid nnU-Net ``dim``-D configuration with a small input (see ``MAX_POOLINGS``)."""
    n_stages = draw(st.integers(2, 7))
    axis_kernel, axis_stride = st.sampled_from([1, 3]), st.sampled_from([1, 2])
    kernels = tuple(tuple(draw(axis_kernel) for _ in range(dim)) for _ in range(n_stages))
    strides, pooled = [(1,) * dim], 0
    for _ in range(1, n_stages):
        stage = []
        for _ in range(dim):
            s = draw(axis_stride) if pooled < MAX_POOLINGS[dim] else 1
            pooled += s == 2
            stage.append(s)
        strides.append(tuple(stage))
    factors = tuple(draw(st.sampled_from([1, 2])) for _ in range(dim))
    # Excluded: a bottleneck of a single pixel/voxel. InstanceNorm (every nnU-Net plan's norm) cannot normalize one
    # element, so nnU-Net's own network fails on it as well (test_single_voxel_bottleneck_is_invalid_for_nnunet);
    # nnU-Net's planner never plans it (it keeps the bottleneck edges >= 4).
    assume(math.prod(factors) > 1)
    per_stage = st.integers(1, 2)
    extents = None
    if draw(st.booleans()):  # candidates planned from a drawn structure span
        lo = tuple(draw(st.floats(0.5, 40.0)) for _ in range(dim))
        extents = (lo, tuple(l * draw(st.floats(1.0, 4.0)) for l in lo))
    return Plan(
        dim=dim,
        encoder=draw(st.sampled_from(["plain", "residual"])),
        kernels=kernels,
        strides=tuple(strides),
        n_per_stage=tuple(draw(per_stage) for _ in range(n_stages)),
        n_conv_decoder=tuple(draw(per_stage) for _ in range(n_stages - 1)),
        input_channels=draw(st.integers(1, 4)),
        output_channels=draw(st.integers(1, 4)),
        batch=draw(st.integers(1, 2)),
        factors=factors,
        options=draw(st.sampled_from(sorted(OPTIONS))),
        extents=extents,
    )


def _deep_supervision_scales(cm: ConfigurationManager) -> List[List[float]]:
    """``nnUNetTrainer._get_deep_supervision_scales`` (deep supervision on), verbatim."""
    return list(list(i) for i in 1 / np.cumprod(np.vstack(cm.pool_op_kernel_sizes), axis=0))[:-1]


# The corners named in the issue, always run besides the drawn ones: 7 stages in 3D with kernel 1 on an axis and a
# residual encoder; stride 1 everywhere (no pooling at all); kernel 1 everywhere; anisotropic 2D.
CORNERS = [
    Plan(3, "residual", ((1, 3, 3),) * 7, ((1, 1, 1),) + ((1, 2, 2),) * 2 + ((2, 2, 1),) * 2 + ((1, 1, 2),) * 2,
         (1, 2, 2, 2, 2, 2, 2), (1,) * 6, 4, 3, 2, (2, 1, 2), "spec", ((1.0, 3.0, 2.0), (6.0, 90.0, 40.0))),
    Plan(3, "plain", ((3, 3, 3),) * 4, ((1, 1, 1),) * 4, (2,) * 4, (2,) * 3, 1, 2, 1, (2, 2, 2), "balanced"),
    Plan(2, "residual", ((1, 1),) * 3, ((1, 1), (2, 2), (2, 2)), (1, 1, 2), (1, 1), 2, 4, 2, (2, 1), "spec"),
    Plan(2, "plain", ((3, 1),) * 7, ((1, 1),) + ((2, 1),) * 6, (1,) * 7, (2,) * 6, 3, 1, 1, (1, 2), "balanced",
         ((4.0, 1.0), (300.0, 2.0))),
]


@pytest.mark.parametrize("plan", CORNERS, ids=["3d-7stages-resenc", "3d-no-pooling", "2d-kernel1-resenc",
                                              "2d-7stages-anisotropic"])
def test_corner_plans(plan: Plan) -> None:
    """The corners named in the issue (see ``CORNERS``), always run whatever hypothesis draws."""
    check_against_nnunet(plan)


# 2D and 3D are parametrized rather than drawn, so that each gets half of the 36 examples; all else is drawn.
@pytest.mark.parametrize("dim", [2, 3])
@settings(max_examples=18, deadline=None, derandomize=True, database=None, print_blob=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_any_valid_plan(dim: int, data: st.DataObject) -> None:
    """See ``check_against_nnunet``, for random valid ``dim``-D plans."""
    check_against_nnunet(data.draw(plans(dim), label="plan"))


def check_against_nnunet(plan: Plan) -> None:
    """For any valid configuration, the MSA2 network (as ``nnUNetTrainerMSA2``/``Full`` build it):

    - builds (catches a block that rejects kernel 1 on an axis, stride 1 stages, 7 stages, ResEnc encoders, ...);
    - with deep supervision returns a list of exactly the shapes of nnU-Net's own network, one per scale of
      ``_get_deep_supervision_scales``, each = input size / cumulative stride (catches a transposed conv or skip
      paired with the wrong stage, an off-by-one in the list, outputs in the wrong order);
    - trains: in train mode the outputs and, after backward of their sum, the gradients are finite and every
      parameter gets one (catches NaN from statistics of tiny maps, recomputation breaking autograd, modules built
      but left out of the graph, which also break DDP);
    - builds with deep supervision off, loads the trained weights strictly and returns one full-size tensor of
      ``num_output_channels`` channels (the predictor's path).
    """
    torch.manual_seed(0)
    cm = ConfigurationManager(plan.configuration())
    options = OPTIONS[plan.options]
    x = torch.randn(plan.batch, plan.input_channels, *plan.patch)

    nnunet_kwargs = {k: v for k, v in cm.network_arch_init_kwargs.items() if k != "sacm_dilations"}
    reference = get_network_from_plans(cm.network_arch_class_name, nnunet_kwargs,
                                       cm.network_arch_init_kwargs_req_import, plan.input_channels,
                                       plan.output_channels, deep_supervision=True).eval()
    with torch.no_grad():
        expected = [list(o.shape) for o in reference(x)]
    scales = _deep_supervision_scales(cm)
    assert expected == [[plan.batch, plan.output_channels] + [round(p * f) for p, f in zip(plan.patch, s)]
                        for s in scales], "the oracle itself disagrees with nnU-Net's deep-supervision scales"

    net = build_msa2_network(cm, plan.input_channels, plan.output_channels, True, **options)
    assert isinstance(net, MSA2UNet) and net.encoder_type == plan.encoder
    planned = plan.planned_candidates().get("sacm_dilations")
    if planned is not None:  # every SACM of decoder stage s (its blocks and bridge) has the level's candidates
        for part in ("stages", "bridges"):
            for s, stage in enumerate(getattr(net.decoder, part)):
                for m in stage.modules():
                    if isinstance(m, SACM):
                        assert [list(d) for d in m.dilations] == planned[-(s + 1)], (part, s)
    net.train()
    out = net(x)
    assert isinstance(out, list)
    assert [list(o.shape) for o in out] == expected
    assert all(torch.isfinite(o).all() for o in out)
    sum(o.sum() for o in out).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, f"{name} is not used by the forward pass"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient in {name}"

    predictor = build_msa2_network(cm, plan.input_channels, plan.output_channels, False, **options)
    predictor.load_state_dict(net.state_dict(), strict=True)
    predictor.eval()
    with torch.no_grad():
        single = predictor(x)
    assert torch.is_tensor(single)
    assert list(single.shape) == [plan.batch, plan.output_channels] + plan.patch
    assert torch.isfinite(single).all()


def test_options_are_the_trainers() -> None:
    """The two option sets drawn above are the trainers' (catches the test drifting from what nnU-Net trains)."""
    assert OPTIONS == {"balanced": DEFAULT_OPTIONS, "spec": {}}


@pytest.mark.parametrize("encoder", ["plain", "residual"])
def test_single_voxel_bottleneck_is_invalid_for_nnunet(encoder: str) -> None:
    """Why ``plans()`` excludes a one-voxel bottleneck: nnU-Net's own network rejects that input too (catches the
    exclusion becoming stale, e.g. if a future nnU-Net accepted it and MSA2 then had to as well)."""
    plan = Plan(2, encoder, ((3, 3),) * 3, ((1, 1), (2, 2), (2, 2)), (1, 1, 1), (1, 1), 1, 2, 1, (1, 1), "spec")
    cm = ConfigurationManager(plan.configuration())
    nnunet_kwargs = {k: v for k, v in cm.network_arch_init_kwargs.items() if k != "sacm_dilations"}
    reference = get_network_from_plans(cm.network_arch_class_name, nnunet_kwargs,
                                       cm.network_arch_init_kwargs_req_import, 1, 2, deep_supervision=True)
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        reference(torch.randn(1, 1, *plan.patch))
