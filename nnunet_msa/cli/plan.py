"""``nnunet-msa plan``: ``nnUNetv2_plan_and_preprocess`` with an MSA2 planner (nnU-Net only finds planners inside its
own package). Same flags and the same three steps, through nnU-Net's own functions: fingerprint extraction,
planning with the chosen MSA2 planner, preprocessing under the new plans."""
from __future__ import annotations

import argparse
from typing import Optional


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    from nnunet_msa.planning import PLANNERS

    parser.add_argument("-d", nargs="+", type=int, required=True, help="dataset IDs, e.g. 4 27")
    parser.add_argument("-pl", default="nnUNetMSA2Planner", choices=sorted(PLANNERS),
                        help="MSA2 planner: nnUNetMSA2Planner (plain encoder, plans nnUNetMSA2Plans) or "
                             "nnUNetMSA2ResEncPlanner (ResEnc M encoder, plans nnUNetMSA2ResEncPlans); nnU-Net's own "
                             "planners run with nnUNetv2_plan_and_preprocess")
    parser.add_argument("--preset", default=None,
                        help="network preset (plans/ or plans/experiments/; `nnunet-msa trainers` lists them) "
                             "whose MSA2UNet options the plans get (default: msa2, "
                             "nnUNetTrainerMSA2's); another preset writes plans <planner's plans>_<preset>")
    parser.add_argument("--candidates", choices=("planned", "fixed"), default="planned",
                        help="SACM's candidate receptive fields: planned per decoder stage from the training labels' "
                             "structure extents (default), or fixed 3, 5, 7 (plans <planner's plans>_fixedRF)")
    parser.add_argument("--max-dilation", type=int, default=None,
                        help="largest planned dilation (default 4: receptive field 9 for kernel 3)")
    parser.add_argument("-gpu_memory_target", type=float, default=None,
                        help="GPU memory target in GB (default: the planner's, 8, as nnU-Net's)")
    parser.add_argument("-fpe", default="DatasetFingerprintExtractor", help="fingerprint extractor class")
    parser.add_argument("-npfp", type=int, default=8, help="processes for fingerprint extraction")
    parser.add_argument("--verify_dataset_integrity", action="store_true", help="check the dataset first")
    parser.add_argument("--no_pp", action="store_true", help="fingerprint and plans only, no preprocessing")
    parser.add_argument("--clean", action="store_true", help="re-extract an existing fingerprint")
    parser.add_argument("-preprocessor_name", default="DefaultPreprocessor", help="preprocessor class")
    parser.add_argument("-overwrite_target_spacing", nargs="+", default=None,
                        help="target spacing of 3d_fullres (three numbers)")
    parser.add_argument("-overwrite_plans_name", default=None, help="plans identifier instead of the planner's")
    parser.add_argument("-c", nargs="+", default=["2d", "3d_fullres", "3d_lowres"],
                        help="configurations to preprocess (missing ones are skipped, as in nnU-Net)")
    parser.add_argument("-np", type=int, nargs="+", default=None,
                        help="preprocessing processes, one number or one per configuration (nnU-Net's defaults)")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--no_pbar", action="store_true", help="no progress bars")


def _with_preset(planner: type, args: argparse.Namespace) -> type:
    """``planner`` planning the network of ``args.preset`` (its options in the memory estimate and the plans) and
    the candidates ``args.candidates`` says."""
    import inspect

    from nnunet_msa.network.presets import DEFAULT_PRESET, all_preset_names, is_preset, preset

    attributes: dict = {}
    suffix = ""
    if args.preset is not None and args.preset != DEFAULT_PRESET:
        if not is_preset(args.preset):
            raise SystemExit(f"nnunet-msa plan: no preset {args.preset!r}; the presets are {all_preset_names()}")
        attributes["msa2_options"] = preset(args.preset)["options"]
        print(f"Preset {args.preset}: {attributes['msa2_options']}")
        suffix += f"_{args.preset}"
    if args.candidates == "fixed":
        attributes["plan_candidates"] = False
        suffix += "_fixedRF"
    if args.max_dilation is not None:
        if args.max_dilation < 1:
            raise SystemExit(f"nnunet-msa plan: --max-dilation must be >= 1, got {args.max_dilation}")
        attributes["max_dilation"] = args.max_dilation
    if not attributes:
        return planner
    if args.overwrite_plans_name is None and suffix:
        default_name = inspect.signature(planner.__init__).parameters["plans_name"].default
        args.overwrite_plans_name = f"{default_name}{suffix}"
    return type(planner.__name__, (planner,), {**attributes, "__module__": planner.__module__})


def print_candidates(plans: dict) -> None:
    """Per configuration, the structures' span and SACM's planned candidates per decoder stage."""
    from nnunet_msa.planning.candidate_plan import describe

    for name, cfg in plans["configurations"].items():
        arch = cfg.get("architecture")
        if arch is None or "msa2_structure_extents" not in cfg:
            continue
        print("\n".join(describe(name, arch["arch_kwargs"], cfg["msa2_structure_extents"])))


def preset_trainer(preset_name: Optional[str]) -> str:
    """The trainer that trains the network of ``preset_name`` (None: the default preset): the command ``plan``
    prints names it, since another preset's trainer refuses these plans."""
    from nnunet_msa.network.presets import DEFAULT_PRESET, preset

    return preset(preset_name or DEFAULT_PRESET)["trainer"]


def run_plan(args: argparse.Namespace) -> int:
    """Fingerprint -> MSA2 plans -> preprocessing, as ``nnUNetv2_plan_and_preprocess -pl ...`` would."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (extract_fingerprints,
                                                                      plan_experiment_dataset, preprocess)

    from nnunet_msa.planning import PLANNERS

    planner = _with_preset(PLANNERS[args.pl], args)
    print("Fingerprint extraction...")
    extract_fingerprints(args.d, args.fpe, args.npfp, args.verify_dataset_integrity, args.clean, args.verbose,
                         show_progress_bar=not args.no_pbar)
    print(f"Experiment planning with {args.pl}...")
    plans_identifier: Optional[str] = None
    for d in args.d:
        plans, plans_identifier = plan_experiment_dataset(d, planner, args.gpu_memory_target,
                                                          args.preprocessor_name, args.overwrite_target_spacing,
                                                          args.overwrite_plans_name)
        print_candidates(plans)
    trainer = preset_trainer(args.preset)
    if args.no_pp:
        print(f"Plans {plans_identifier} written (no preprocessing: --no_pp). Train with: nnUNetv2_train DATASET "
              f"CONFIG FOLD -tr {trainer} -p {plans_identifier}")
        return 0
    if args.np is None:
        default_np = {"2d": 8, "3d_fullres": 4, "3d_lowres": 8}
        num_processes = [default_np.get(c, 4) for c in args.c]
    else:
        num_processes = args.np
    print("Preprocessing...")
    preprocess(args.d, plans_identifier, args.c, num_processes, args.verbose, show_progress_bar=not args.no_pbar)
    print(f"Done. Train with: nnUNetv2_train DATASET CONFIG FOLD -tr {trainer} -p {plans_identifier} "
          f"(or nnU-Net's -tr nnUNetTrainer -p {plans_identifier}).")
    return 0
