"""A configuration at a coarser in-plane spacing, planned by nnU-Net's own experiment planner and written into the
plans as an ``inherits_from`` configuration (nnU-Net's documented way to add one), then preprocessed with
``nnUNetv2_preprocess -d D -c NAME``.

What it is for: a budget that fits a CPU. ACDC's 2d plans (1.56 mm in-plane, patch about 256 x 224) take hours for
1000 iterations on two cores; the same images at 3.1 mm in-plane are a quarter of the pixels. nnU-Net plans the
network, patch and batch for the new spacing exactly as it plans ``3d_lowres`` (``get_plans_for_configuration``),
prediction resamples back to the images' own spacing, and Dice is scored there. It is not nnU-Net's full-resolution
result: thin structures (the myocardium) lose most.

    python -m nnunet_msa.pipeline.coarser_configuration 27 -c 2d --in-plane-factor 2     # adds 2d_inplane2x
    nnUNetv2_preprocess -d 27 -c 2d_inplane2x
    nnUNetv2_train 27 2d_inplane2x 0 -tr nnUNetTrainerMSA2
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

from nnunet_msa.pipeline.plans_edit import plans_path


def coarser_name(base: str, in_plane_factor: float) -> str:
    """``2d``, 2 -> ``2d_inplane2x``; ``2d``, 1.5 -> ``2d_inplane1.5x``."""
    return f"{base}_inplane{in_plane_factor:g}x"


def coarser_spacing(spacing: Sequence[float], in_plane_factor: float) -> List[float]:
    """The configuration's spacing (nnU-Net's transposed axis order) with its in-plane axes ``in_plane_factor``
    times coarser. In-plane: every axis of a 2d configuration; of a 3d one the axes finer than the coarsest (all of
    them when the spacing is isotropic)."""
    if in_plane_factor < 1:
        raise ValueError(f"in_plane_factor {in_plane_factor} < 1 would make the spacing finer than planned; "
                         "give a factor >= 1")
    spacing = [float(s) for s in spacing]
    if len(spacing) == 2 or max(spacing) == min(spacing):
        return [s * in_plane_factor for s in spacing]
    coarsest = max(spacing)
    return [s * in_plane_factor if s < coarsest else s for s in spacing]


def _planner(dataset_name: str, plans: Dict[str, Any]):
    """nnU-Net's experiment planner these plans were made with (``experiment_planner_used``), else the default."""
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner

    cls = ExperimentPlanner
    used = plans.get("experiment_planner_used")
    if used and used != ExperimentPlanner.__name__:
        import nnunetv2
        from nnunetv2.utilities.find_class_by_name import recursive_find_python_class

        found = recursive_find_python_class(os.path.join(nnunetv2.__path__[0], "experiment_planning"), used,
                                            "nnunetv2.experiment_planning")
        cls = found or ExperimentPlanner
    return cls(dataset_name, plans_name=plans["plans_name"])


def plan_coarser_configuration(dataset_name: str, base: str, in_plane_factor: float,
                               plans_name: str = "nnUNetPlans") -> Dict[str, Any]:
    """nnU-Net's planned configuration (spacing, patch, network, batch, ``data_identifier``) for ``base``'s images
    at ``in_plane_factor`` times its in-plane spacing. Needs ``nnUNet_raw`` and ``nnUNet_preprocessed`` set and the
    dataset planned (``dataset_fingerprint.json`` and the plans file exist)."""
    import numpy as np
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.preprocessing.resampling.default_resampling import compute_new_shape
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    path = plans_path(os.path.join(nnUNet_preprocessed, dataset_name), plans_name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: plan the dataset first (nnUNetv2_plan_and_preprocess -d ... "
                                "--no_pp, or nnUNetv2_plan_experiment)")
    manager = PlansManager(path)
    if base not in manager.available_configurations:
        raise KeyError(f"configuration {base!r} is not in {path}; it has {manager.available_configurations}")
    base_cm = manager.get_configuration(base)
    planner = _planner(dataset_name, manager.plans)
    spacing = coarser_spacing(base_cm.spacing, in_plane_factor)
    ratio = np.array(base_cm.spacing, dtype=float) / np.array(spacing, dtype=float)
    median_shape = np.array(base_cm.median_image_size_in_voxels, dtype=float) * ratio
    # the data the batch-size cap sees, as the planner computes it: every case resampled to the 3d target spacing
    # (a 2d configuration: the planned out-of-plane spacing and the coarser in-plane one), in transposed order
    if len(spacing) == 3:
        target_t = np.array(spacing, dtype=float)
    else:
        full_t = (manager.plans["configurations"].get("3d_fullres", {}).get("spacing")
                  or manager.plans["original_median_spacing_after_transp"])
        target_t = np.array([float(full_t[0]), *spacing], dtype=float)
    target = target_t[manager.transpose_backward]
    forward = manager.transpose_forward
    fp = planner.dataset_fingerprint
    shapes = [compute_new_shape(s, sp, target) for s, sp in zip(fp["shapes_after_crop"], fp["spacings"])]
    n_voxels = float(np.prod(np.median(shapes, 0)[forward], dtype=np.float64) * planner.dataset_json["numTraining"])
    plan = planner.get_plans_for_configuration(spacing, median_shape, planner.generate_data_identifier(
        coarser_name(base, in_plane_factor)), n_voxels, {})
    plan["batch_dice"] = base_cm.configuration.get("batch_dice", plan.get("batch_dice"))
    from nnunetv2.utilities.json_export import recursive_fix_for_json_export

    recursive_fix_for_json_export(plan)
    return json.loads(json.dumps(plan))


def add_coarser_configuration(dataset_name: str, base: str, in_plane_factor: float, name: Optional[str] = None,
                              plans_name: str = "nnUNetPlans") -> str:
    """Write ``name`` (default ``coarser_name(base, factor)``) into the plans: ``inherits_from: base`` and every key
    nnU-Net's planner sets otherwise for the coarser spacing. Idempotent; returns the name."""
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    name = name or coarser_name(base, in_plane_factor)
    planned = plan_coarser_configuration(dataset_name, base, in_plane_factor, plans_name)
    path = plans_path(os.path.join(nnUNet_preprocessed, dataset_name), plans_name)
    base_config = json.loads(json.dumps(PlansManager(path).get_configuration(base).configuration))
    entry: Dict[str, Any] = {"inherits_from": base}
    entry.update({k: v for k, v in planned.items() if base_config.get(k) != v})
    with open(path) as f:
        plans = json.load(f)
    if plans["configurations"].get(name) != entry:
        plans["configurations"][name] = entry
        with open(path, "w") as f:
            json.dump(plans, f, indent=4)
    return name


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nnunet_msa.pipeline.coarser_configuration",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", help="dataset name or id (planned already)")
    p.add_argument("-c", "--configuration", default="2d", help="the configuration to coarsen (default %(default)s)")
    p.add_argument("--in-plane-factor", type=float, default=2.0, help="in-plane spacing multiplier (default 2)")
    p.add_argument("--name", default=None, help="the new configuration's name (default CONFIG_inplaneFx)")
    p.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier (default %(default)s)")
    args = p.parse_args(argv)
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    dataset = maybe_convert_to_dataset_name(args.dataset)
    name = add_coarser_configuration(dataset, args.configuration, args.in_plane_factor, args.name, args.plans)
    from nnunetv2.paths import nnUNet_preprocessed

    with open(plans_path(os.path.join(nnUNet_preprocessed, dataset), args.plans)) as f:
        entry = json.load(f)["configurations"][name]
    print(json.dumps({name: entry}, indent=1))
    print(f"next: nnUNetv2_preprocess -d {args.dataset} -c {name} -p {args.plans}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
