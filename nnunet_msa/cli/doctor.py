"""``nnunet-msa doctor [-tr TRAINER] [-d DATASET -c CONFIGURATION [-p PLANS]]``: checks, before a training, what
nnU-Net needs to find and run an MSA2 trainer, and says what to fix.

- nnU-Net's folders (``nnUNet_raw``, ``nnUNet_preprocessed``, ``nnUNet_results``) are set and exist;
- ``nnUNet_extTrainer`` holds this installation's trainers folder, and nnU-Net itself (a fresh process, its own
  ``recursive_find_trainer_class_by_name``) finds the trainer; a misspelt name gets the closest of ours;
- with ``-d``/``-c``: the trainer builds its network from that dataset's plans and runs a forward pass of the
  smallest input the plans allow, so plans without what MSA2 needs fail here, not in the first epoch; and its
  training memory at the planned patch and batch, by nnU-Net's own planner rule, is compared with the GPU's memory
  (the CUDA device's, or ``--gpu-memory GB``): a warning points to ``_lowMemory`` or ``nnunet-msa plan`` when it
  does not fit.
"""
from __future__ import annotations

import argparse
import difflib
import os
import subprocess
import sys
from typing import List, Optional, Tuple

from nnunet_msa.pipeline.trainers_path import trainers_path

TRAINER = "nnUNetTrainerMSA2"


def add_doctor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-tr", "--trainer", default=TRAINER, help=f"trainer name to look up (default {TRAINER})")
    parser.add_argument("-d", "--dataset", default=None, help="dataset name or ID whose plans to check")
    parser.add_argument("-c", "--configuration", default=None, help="configuration of the plans to check (with -d)")
    parser.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)")
    parser.add_argument("--gpu-memory", type=float, default=None,
                        help="GPU memory in GB to check the training memory estimate against (default: the CUDA "
                             "device's, if there is one)")


def our_trainer_names() -> List[str]:
    """Every trainer class name this package ships."""
    from nnunet_msa.training import __all__ as names
    return list(names)


def _check_trainer_lookup(trainer: str) -> Tuple[bool, str]:
    """Ask nnU-Net itself, in a fresh process with the current environment, to find the trainer."""
    code = ("from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as f;"
            f"c = f({trainer!r}); print(c.__module__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode == 0:
        return True, f"nnU-Net finds {trainer} ({proc.stdout.strip().splitlines()[-1]})"
    return False, (proc.stderr.strip().splitlines() or ["unknown error"])[-1]


def _unknown_trainer_fix(trainer: str) -> str:
    """The fix for a name nnU-Net cannot find although our folder is on nnUNet_extTrainer."""
    close = difflib.get_close_matches(trainer, our_trainer_names(), n=3, cutoff=0.6)
    if close:
        return f"nnU-Net has no trainer named {trainer}. Did you mean {' or '.join(close)}?"
    return (f"nnU-Net has no trainer named {trainer}, neither its own nor ours. nnunet-msa ships: "
            f"{', '.join(our_trainer_names()[:6])}, ... (python -c 'import nnunet_msa.training as t; "
            f"print(t.__all__)'); a trainer of your own must be in a folder on nnUNet_extTrainer "
            f"(separate folders with '{os.pathsep}').")


def estimated_training_gb(network, patch_size, batch_size: int) -> float:
    """Training memory (GB) of ``network`` at ``patch_size`` and ``batch_size`` by nnU-Net's planner rule: its
    feature-map estimate (``compute_conv_feature_map_size``) against the planner's reference value, which a
    network of nnU-Net's at the planned batch meets at 8 GB (``ExperimentPlanner``: 2d 85e6 at batch 12, 3d 560e6
    at batch 2)."""
    two_d = len(patch_size) == 2
    ref_val, ref_bs = (85000000, 12) if two_d else (560000000, 2)
    ref_gb = 8
    estimate = float(network.compute_conv_feature_map_size(list(patch_size)))
    return ref_gb * estimate * batch_size / (ref_val * ref_bs)


def gpu_memory_gb(override: Optional[float]) -> Optional[float]:
    """``override``, else the first CUDA device's memory, else None."""
    if override is not None:
        return float(override)
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).total_memory / 1024 ** 3
    return None


def memory_warning(trainer: str, gb: float, gpu_gb: Optional[float], configuration: str) -> Optional[str]:
    """The warning when the estimate exceeds the GPU's memory, with the two fixes."""
    if gpu_gb is None or gb <= gpu_gb:
        return None
    return (f"{trainer} needs about {gb:.1f} GB to train [{configuration}] at the planned patch and batch (nnU-Net's "
            f"planner rule), more than the GPU's {gpu_gb:.1f} GB. Fix: train nnUNetTrainerMSA2_lowMemory (the same "
            f"network, blocks recomputed in backward: about nnU-Net's memory), or plan for the MSA2 network: "
            f"nnunet-msa plan -d DATASET -gpu_memory_target {max(1, int(gpu_gb * 0.9))} (smaller batch or patch).")


def _check_plans(trainer: str, dataset: str, configuration: str, plans: str,
                 gpu_memory: Optional[float] = None) -> Tuple[bool, str]:
    """Build ``trainer``'s network from the plans and run the smallest forward pass they allow (2 voxels per axis at the bottom)."""
    import json

    import torch
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    try:
        name = maybe_convert_to_dataset_name(dataset)
    except RuntimeError as e:
        return False, f"dataset {dataset!r}: {e}"
    folder = os.path.join(os.environ["nnUNet_preprocessed"], name)
    plans_file = os.path.join(folder, f"{plans}.json")
    if not os.path.isfile(plans_file):
        return False, (f"no plans {plans_file}. Fix: nnUNetv2_plan_and_preprocess -d {dataset} (or nnunet-msa plan "
                       f"-d {dataset} for nnUNetMSA2Plans), or pass the plans identifier with -p")
    pm = PlansManager(plans_file)
    if configuration not in pm.available_configurations:
        return False, (f"{plans_file} has no configuration {configuration!r}; it has "
                       f"{', '.join(pm.available_configurations)}")
    with open(os.path.join(folder, "dataset.json")) as f:
        dataset_json = json.load(f)
    cm = pm.get_configuration(configuration)
    channels = len(dataset_json.get("channel_names", dataset_json.get("modality", {})))
    heads = pm.get_label_manager(dataset_json).num_segmentation_heads
    cls = recursive_find_trainer_class_by_name(trainer)
    try:
        net = cls.build_network_architecture(pm, cm, channels, heads, True)
        strides = cm.network_arch_init_kwargs.get("strides") or cm.pool_op_kernel_sizes
        size = [2] * len(cm.patch_size)  # 2 at the bottom: instance norm needs more than one element
        for s in strides:
            size = [a * int(b) for a, b in zip(size, s)]
        with torch.no_grad():
            net.eval()(torch.zeros(1, channels, *size))
    except Exception as e:  # PlansError and the network's own ValueErrors name the problem; keep their text
        return False, f"{trainer} cannot build its network from {plans_file} [{configuration}]: {e}"
    n_params = sum(p.numel() for p in net.parameters())
    gb = estimated_training_gb(net, cm.patch_size, cm.batch_size)
    gpu_gb = gpu_memory_gb(gpu_memory)
    memory = (f"about {gb:.1f} GB to train" + (f" of the GPU's {gpu_gb:.1f} GB" if gpu_gb is not None else
                                              " (no GPU here: --gpu-memory GB compares it with yours)"))
    ok = f"{trainer} builds from {plans}.json [{configuration}] of {name}: {channels} input channel(s), " \
         f"{heads} output(s), {n_params:,} parameters, patch {list(cm.patch_size)}, batch {cm.batch_size}, {memory}"
    warning = memory_warning(trainer, gb, gpu_gb, configuration)
    return True, ok + (f"\nWARN  {warning}" if warning else "")


def run_doctor(args: Optional[argparse.Namespace] = None) -> int:
    """Print a checklist; return 0 when everything needed for training is in place, else 1."""
    trainer = getattr(args, "trainer", TRAINER) or TRAINER
    dataset, configuration = getattr(args, "dataset", None), getattr(args, "configuration", None)
    problems: List[str] = []
    import nnunetv2
    import torch
    from importlib.metadata import version

    import nnunet_msa
    print(f"python {sys.version.split()[0]}, torch {torch.__version__} (cuda available: "
          f"{torch.cuda.is_available()}), nnunetv2 {version('nnunetv2')}, dynamic-network-architectures "
          f"{version('dynamic_network_architectures')}, nnunet-msa {nnunet_msa.__version__}")
    path = trainers_path()
    ext = os.environ.get("nnUNet_extTrainer", "")
    entries = [os.path.abspath(p) for p in ext.split(os.pathsep) if p.strip()]
    found = False
    if not ext:
        problems.append(f"nnUNet_extTrainer is not set, so nnUNetv2_train and nnUNetv2_predict cannot find "
                        f"{trainer}. Fix: export nnUNet_extTrainer=$(nnunet-msa trainers-path)")
    elif path not in entries:
        problems.append(f"nnUNet_extTrainer={ext!r} does not contain {path}, so nnU-Net cannot find {trainer}. "
                        f"Fix: export nnUNet_extTrainer=$(nnunet-msa trainers-path)")
    else:
        found, message = _check_trainer_lookup(trainer)
        print(("ok    " if found else "FAIL  ") + message)
        if not found:
            if "Could not find requested nnunet trainer" in message:
                problems.append(_unknown_trainer_fix(trainer))
            else:
                problems.append(f"nnU-Net could not import {trainer} from {path}: {message}")
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        value = os.environ.get(var)
        if not value:
            problems.append(f"{var} is not set; nnU-Net needs it. Fix: export {var}=/path/to/{var}")
        elif not os.path.isdir(value):
            problems.append(f"{var}={value} does not exist. Fix: mkdir -p {value}")
        else:
            print(f"ok    {var}={value}")
    if dataset is not None or configuration is not None:
        if dataset is None or configuration is None:
            problems.append("checking plans needs both -d DATASET and -c CONFIGURATION")
        elif not found or not os.environ.get("nnUNet_preprocessed"):
            problems.append(f"plans of {dataset} [{configuration}] not checked: fix the trainer lookup and "
                            f"nnUNet_preprocessed first")
        else:
            ok, message = _check_plans(trainer, dataset, configuration, args.plans,
                                       getattr(args, "gpu_memory", None))
            print(("ok    " if ok else "FAIL  ") + message)
            if not ok:
                problems.append(message)
    if problems:
        for p in problems:
            print("FIX   " + p)
        return 1
    print(f"ok    nnU-Net is ready for -tr {trainer} (nnunetv2 at {nnunetv2.__path__[0]})")
    return 0
