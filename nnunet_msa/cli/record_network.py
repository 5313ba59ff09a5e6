"""``nnunet-msa record-network MODEL_FOLDER``: record the network of a model trained before nnunet-msa 0.2.0, whose
folder does not say which network its weights belong to (``network/network_record.py``).

Without ``--preset``/``--options`` the network is found from the weights: every preset's network is built (on the
meta device) on the folder's own plans, and the one every fold's weights fit is recorded; when several different
networks fit, it lists them and asks for ``--preset``. The folder's ``plans.json`` is kept beside the new one as
``plans.json.before_record``.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
from typing import Any, Dict, List, Optional, Tuple

CHECKPOINTS = ("checkpoint_final.pth", "checkpoint_latest.pth", "checkpoint_best.pth")
BACKUP = "plans.json.before_record"


def add_record_network_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_folder", help="the Trainer__Plans__configuration folder (holds plans.json, fold_*)")
    parser.add_argument("--preset", default=None, help="record this preset's network (plans/NAME.json or "
                                                       "plans/experiments/NAME.json; a former name too) instead "
                                                       "of finding it from the weights")
    parser.add_argument("--options", default=None, help="record these MSA2UNet options (JSON) instead")
    parser.add_argument("--force", action="store_true", help="replace a record the folder already has")


def _fold_checkpoints(folder: str) -> List[str]:
    out = []
    for fold in sorted(glob.glob(os.path.join(folder, "fold_*"))):
        for name in CHECKPOINTS:
            if os.path.isfile(os.path.join(fold, name)):
                out.append(os.path.join(fold, name))
                break
    return out


def _build_info(folder: str, plans: dict, configuration: str) -> Dict[str, Any]:
    """What ``MSA2UNet`` needs besides its MSA2 options, from the folder's plans and dataset.json."""
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_msa.network.network_record import msa2_option_names
    from nnunet_msa.training.network_from_plans import msa2_kwargs_from_plans

    with open(os.path.join(folder, "dataset.json")) as f:
        dataset_json = json.load(f)
    pm = PlansManager(plans)
    cm = pm.get_configuration(configuration)
    kwargs = msa2_kwargs_from_plans(cm.network_arch_class_name, cm.network_arch_init_kwargs,
                                    cm.network_arch_init_kwargs_req_import)
    names = set(msa2_option_names())
    return {"arch_kwargs": {k: v for k, v in kwargs.items() if k not in names},
            "plans_msa2": {k: v for k, v in kwargs.items() if k in names},
            "input_channels": determine_num_input_channels(pm, cm, dataset_json),
            "num_classes": pm.get_label_manager(dataset_json).num_segmentation_heads, "deep_supervision": False}


def _choose(build: Dict[str, Any], given: List[Tuple[str, dict]], trainer: str,
            args: argparse.Namespace) -> Tuple[Dict[str, Any], Optional[str], str]:
    """(options, preset, how) of the network every fold's weights fit."""
    from nnunet_msa.network.network_record import (INIT_OPTIONS, RUNTIME_OPTIONS, effective_options,
                                                   option_differences)
    from nnunet_msa.network.presets import all_preset_names, is_preset, preset_trainers, resolved_options
    from nnunet_msa.network.weights_fit import fit, network_shapes

    def fits_all(options: Dict[str, Any]) -> List[str]:
        shapes = network_shapes(build, options)
        return [path for path, w in given if any(fit(shapes, w))]

    if args.preset or args.options:
        if args.preset and not is_preset(args.preset):
            raise SystemExit(f"nnunet-msa record-network: no preset {args.preset!r}; the presets are "
                             f"{all_preset_names()}")
        try:
            chosen = json.loads(args.options) if args.options else resolved_options(args.preset)
        except json.JSONDecodeError as e:
            raise SystemExit(f"nnunet-msa record-network: --options is not JSON ({e})")
        options = effective_options(build["plans_msa2"], chosen)
        bad = fits_all(options)
        if bad:
            raise SystemExit(f"nnunet-msa record-network: the weights of {', '.join(bad)} do not fit the network "
                             f"of {args.preset or args.options}; run without --preset to find the one they fit.")
        return options, args.preset, "--preset" if args.preset else "--options"
    groups: List[Tuple[Dict[str, Any], List[str]]] = []
    for name in all_preset_names():
        try:
            options = effective_options(build["plans_msa2"], resolved_options(name))
            if fits_all(options):
                continue
        except Exception:
            continue
        for opts, names in groups:
            if not option_differences(opts, options, RUNTIME_OPTIONS + INIT_OPTIONS):
                names.append(name)
                break
        else:
            groups.append((options, [name]))
    if not groups:
        raise SystemExit("nnunet-msa record-network: no preset of this version builds a network these weights "
                         "fit. Install the nnunet-msa version the model was trained with, or give its options: "
                         "--options '{\"sacm_realization\": ...}'.")
    if len(groups) > 1:
        listed = "; ".join(", ".join(names) for _, names in groups)
        raise SystemExit(f"nnunet-msa record-network: the weights fit {len(groups)} different networks (presets: "
                         f"{listed}). Say which one trained them: --preset NAME.")
    options, names = groups[0]
    own = [n for n in names if trainer.removesuffix("_budget") in preset_trainers(n)]
    name = (own or names)[0]
    return effective_options(build["plans_msa2"], resolved_options(name)), name, f"the weights (fit: {names})"


def run_record_network(args: argparse.Namespace) -> int:
    import torch

    from nnunet_msa.network.network_record import RECORD_KEY, describe_record, make_record, record_in
    from nnunet_msa.network.weights_fit import shapes_of

    folder = os.path.abspath(args.model_folder)
    plans_path = os.path.join(folder, "plans.json")
    if not os.path.isfile(plans_path):
        raise SystemExit(f"nnunet-msa record-network: {plans_path} does not exist; give the model folder "
                         f"(nnUNet_results/DATASET/Trainer__Plans__configuration).")
    checkpoints = _fold_checkpoints(folder)
    if not checkpoints:
        raise SystemExit(f"nnunet-msa record-network: no fold_*/checkpoint_*.pth in {folder}.")
    with open(plans_path) as f:
        plans = json.load(f)
    loaded = [(p, torch.load(p, map_location="cpu", weights_only=False)) for p in checkpoints]
    trainer = loaded[0][1]["trainer_name"]
    configuration = loaded[0][1]["init_args"]["configuration"]
    existing = record_in(plans["configurations"].get(configuration))
    if existing and not args.force:
        print(f"{folder} already records its network: {describe_record(existing)}. (--force replaces it.)")
        return 0
    build = _build_info(folder, plans, configuration)
    given = [(p, shapes_of(c["network_weights"])) for p, c in loaded]
    options, preset_name, how = _choose(build, given, trainer, args)
    record = make_record(trainer, preset_name, options, recorded_by="nnunet-msa record-network", found_from=how)
    backup = os.path.join(folder, BACKUP)
    if not os.path.isfile(backup):
        shutil.copyfile(plans_path, backup)
    plans["configurations"][configuration][RECORD_KEY] = record
    partial = plans_path + ".part"
    with open(partial, "w") as f:
        json.dump(plans, f, indent=4)
    os.replace(partial, plans_path)
    print(f"Recorded in {plans_path} (configuration {configuration}, from {how}; the previous file is {backup}):\n"
          f"  {describe_record(record)}\n"
          f"nnUNetv2_predict, nnUNetv2_train --val/--c and export now rebuild this network.")
    return 0
