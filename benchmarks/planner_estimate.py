"""nnU-Net's planner-style memory estimate: ``network.compute_conv_feature_map_size(patch_size)`` (feature-map
elements of one sample, the number nnU-Net's ``ExperimentPlanner`` compares with its reference value to choose
patch and batch size), and the batch the planner's rule would give each network at the planned patch.

Reference values come from an instance of nnU-Net's ``ExperimentPlanner`` for the dataset (default 8 GB target):
batch = round(reference / estimate · reference batch) (before the planner's 5 %-of-dataset cap), and the planner
would shrink the patch if estimate / reference batch · 2 > reference.
"""
from __future__ import annotations

import contextlib
import io
from typing import Any, Dict

from torch import nn

from benchmarks.workspace import PlanContext


def planner_reference(ctx: PlanContext) -> Dict[str, float]:
    """Reference value and reference batch of nnU-Net's default planner for this plan's dimensionality."""
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner

    with contextlib.redirect_stdout(io.StringIO()):
        planner = ExperimentPlanner(ctx.plan.dataset.dataset_name)
    is_2d = len(ctx.patch_size) == 2
    reference = (planner.UNet_reference_val_2d if is_2d else planner.UNet_reference_val_3d) * (
        planner.UNet_vram_target_GB / planner.UNet_reference_val_corresp_GB)
    ref_bs = planner.UNet_reference_val_corresp_bs_2d if is_2d else planner.UNet_reference_val_corresp_bs_3d
    return {"reference": float(reference), "reference_batch": int(ref_bs), "vram_target_GB":
            float(planner.UNet_vram_target_GB), "min_batch": int(planner.UNet_min_batch_size)}


def planner_estimate(network: nn.Module, ctx: PlanContext, reference: Dict[str, float]) -> Dict[str, Any]:
    """Feature-map elements at the planned patch and what the planner's batch rule makes of them."""
    estimate = int(network.compute_conv_feature_map_size(ctx.patch_size))
    batch = round(reference["reference"] / estimate * reference["reference_batch"])
    return {
        "feature_map_elements": estimate,
        "planner_batch_uncapped": int(batch),
        "planner_keeps_patch": bool(estimate / reference["reference_batch"] * 2 <= reference["reference"]),
    }
