"""MSA2 experiment planners: nnU-Net's planners (default and ResEnc M) whose patch and batch size come from the MSA2
network's own memory estimate (``MSA2UNet.compute_conv_feature_map_size``) against nnU-Net's reference for the GPU
memory target, and whose plans name the MSA2 network and its options, so ``nnUNetTrainer`` and
``nnUNetTrainerMSA2`` both train it with ``-p nnUNetMSA2Plans`` (or ``-p nnUNetMSA2ResEncPlans``).

nnU-Net only finds planners inside its own package: run them with ``nnunet-msa plan -d ID [-pl ...]``.
"""
from __future__ import annotations

from typing import Any, ClassVar, Dict, List, Optional, Tuple, Union

import numpy as np

from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
from nnunetv2.experiment_planning.experiment_planners.residual_unets.residual_encoder_unet_planners import \
    nnUNetPlannerResEncM

from nnunet_msa.network.msa2_unet import MSA2UNet
from nnunet_msa.network.presets import DEFAULT_PRESET, resolved_options
from nnunet_msa.planning.candidate_plan import MAX_DILATION
from nnunet_msa.planning.planned_configuration import planned_candidates, raw_dataset_extents
from nnunet_msa.planning.structure_extents import StructureExtents


def uses_sacm(options: Dict[str, Any]) -> bool:
    """Whether the network of these ``MSA2UNet`` options has SACM (whose candidates can be planned)."""
    kind = options.get("multiscale_conv") or ("sacm" if options.get("use_sacm", True) else "static")
    return kind == "sacm"


class MSA2PlannerMixin:
    """Turns an nnU-Net planner into an MSA2 one by hooks: the memory estimate builds the MSA2 network with
    ``msa2_options`` on the planned encoder, and the written architecture names ``MSA2UNet`` with those options and,
    with ``plan_candidates``, SACM's candidate dilations per stage planned from the training labels' structure
    extents (``candidate_plan``; the extents' span is written next to them as ``msa2_structure_extents``)."""

    msa2_options: ClassVar[Dict[str, Any]] = resolved_options(DEFAULT_PRESET)
    encoder: ClassVar[str] = "plain"
    plan_candidates: ClassVar[bool] = True
    max_dilation: ClassVar[int] = MAX_DILATION
    #: label files read for the structure extents (evenly picked; None: all)
    max_extent_cases: ClassVar[Optional[int]] = 100

    def _msa2_kwargs(self, arch_kwargs: dict) -> dict:
        return {**arch_kwargs, "encoder": self.encoder, **self.msa2_options}

    def static_estimate_VRAM_usage(self, patch_size: Tuple[int, ...], input_channels: int, output_channels: int,
                                   arch_class_name: str, arch_kwargs: dict,
                                   arch_kwargs_req_import: Tuple[str, ...]) -> int:
        """nnU-Net's estimate (feature-map elements of one sample), of the MSA2 network."""
        return ExperimentPlanner.static_estimate_VRAM_usage(patch_size, input_channels, output_channels,
                                                            arch_class_name, self._msa2_kwargs(arch_kwargs),
                                                            arch_kwargs_req_import)

    def get_plans_for_configuration(self, spacing: Union[np.ndarray, Tuple[float, ...], List[float]],
                                    median_shape: Union[np.ndarray, Tuple[int, ...]], data_identifier: str,
                                    approximate_n_voxels_dataset: float, _cache: dict) -> dict:
        plan = super().get_plans_for_configuration(spacing, median_shape, data_identifier,
                                                   approximate_n_voxels_dataset, _cache)
        arch_kwargs = self._msa2_kwargs(plan["architecture"]["arch_kwargs"])
        if self.plan_candidates and uses_sacm(self.msa2_options):
            arch_kwargs["sacm_dilations"], plan["msa2_structure_extents"] = planned_candidates(
                arch_kwargs, plan["patch_size"], spacing, self.determine_transpose()[0], self.structure_extents(),
                self.max_dilation)
        plan["architecture"]["arch_kwargs"] = arch_kwargs
        return plan

    def structure_extents(self) -> StructureExtents:
        """The training labels' structure extents (read once per planner)."""
        if getattr(self, "_structure_extents", None) is None:
            slice_axis = int(self.determine_transpose()[0][0])
            self._structure_extents = raw_dataset_extents(self.raw_dataset_folder, slice_axis, self.max_extent_cases)
        return self._structure_extents

    def generate_data_identifier(self, configuration_name: str) -> str:
        """Preprocessed data of these plans in their own folders (``nnUNetMSA2Plans_2d``, ...)."""
        return self.plans_identifier + "_" + configuration_name


class nnUNetMSA2Planner(MSA2PlannerMixin, ExperimentPlanner):
    """nnU-Net's default planner (plain conv encoder) for the MSA2 network; plans ``nnUNetMSA2Plans``."""

    def __init__(self, dataset_name_or_id: Union[str, int], gpu_memory_target_in_gb: float = 8,
                 preprocessor_name: str = "DefaultPreprocessor", plans_name: str = "nnUNetMSA2Plans",
                 overwrite_target_spacing: Optional[Union[List[float], Tuple[float, ...]]] = None,
                 suppress_transpose: bool = False):
        super().__init__(dataset_name_or_id, gpu_memory_target_in_gb, preprocessor_name, plans_name,
                         overwrite_target_spacing, suppress_transpose)
        self.UNet_class = MSA2UNet


class nnUNetMSA2ResEncPlanner(MSA2PlannerMixin, nnUNetPlannerResEncM):
    """nnU-Net's ResEnc M planner (residual encoder) for the MSA2 network; plans ``nnUNetMSA2ResEncPlans``."""

    encoder: ClassVar[str] = "residual"

    def __init__(self, dataset_name_or_id: Union[str, int], gpu_memory_target_in_gb: float = 8,
                 preprocessor_name: str = "DefaultPreprocessor", plans_name: str = "nnUNetMSA2ResEncPlans",
                 overwrite_target_spacing: Optional[Union[List[float], Tuple[float, ...]]] = None,
                 suppress_transpose: bool = False):
        super().__init__(dataset_name_or_id, gpu_memory_target_in_gb, preprocessor_name, plans_name,
                         overwrite_target_spacing, suppress_transpose)
        self.UNet_class = MSA2UNet


PLANNERS = {c.__name__: c for c in (nnUNetMSA2Planner, nnUNetMSA2ResEncPlanner)}
