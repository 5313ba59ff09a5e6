"""The benchmark's nnU-Net workspace: raw data, plans and preprocessed data, produced by nnU-Net's own commands
and reused between runs.

Layout under the workspace root: ``nnUNet_raw/``, ``nnUNet_preprocessed/``, ``nnUNet_results/`` (nnU-Net's
folders), ``msd_source/`` (an MSD-layout view of a shared dataset with the empty ``imagesTs/`` the converter
requires), ``logs/`` (every command's output) and ``state/`` (markers of finished preprocessing).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from typing import Dict, List, Sequence

from nnunet_msa.pipeline.commands import console_script as nnunet_command
from nnunet_msa.pipeline.commands import run_command
from nnunet_msa.pipeline.environment import nnunet_env
from nnunet_msa.pipeline.msd import convert_command, msd_view

from benchmarks.catalog import DatasetSpec, PlanSpec

PLANS_NAME = "nnUNetPlans"


@dataclass
class Workspace:
    """An nnU-Net workspace folder and the shared data it is built from."""

    root: str
    data_root: str
    n_proc: int = 2

    def __post_init__(self) -> None:
        self.root = os.path.abspath(self.root)
        self.data_root = os.path.abspath(self.data_root)
        for sub in ("logs", "state"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)

    def env(self, **budget: int) -> Dict[str, str]:
        """Environment for nnU-Net commands on this workspace (``nnUNet_*`` folders, our trainers, the
        ``*_budget`` trainers' ``epochs``/``iterations``/``val_iterations`` when given)."""
        extra = {"nnUNet_def_n_proc": str(self.n_proc), "PYTHONUNBUFFERED": "1"}
        return nnunet_env(self.root, extra=extra, **budget)

    def apply_to_process(self) -> None:
        """Point this process's nnU-Net at the workspace (nnU-Net reads its folders from the environment)."""
        env = self.env()
        for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer",
                    "nnUNet_def_n_proc", "nnUNet_compile"):
            os.environ[key] = env[key]

    def raw_dir(self, spec: DatasetSpec) -> str:
        return os.path.join(self.root, "nnUNet_raw", spec.dataset_name)

    def preprocessed_dir(self, spec: DatasetSpec) -> str:
        return os.path.join(self.root, "nnUNet_preprocessed", spec.dataset_name)

    def results_dir(self, spec: DatasetSpec) -> str:
        return os.path.join(self.root, "nnUNet_results", spec.dataset_name)

    def log_path(self, name: str) -> str:
        return os.path.join(self.root, "logs", f"{name}.log")

    def _marker(self, spec: DatasetSpec, configuration: str) -> str:
        return os.path.join(self.root, "state", f"{spec.dataset_name}_{configuration}.preprocessed")

    def run(self, args: Sequence[str], log_name: str) -> float:
        """Run an nnU-Net command on this workspace, logged; returns its wall time."""
        print(f"  $ {' '.join(args)}   (log: {self.log_path(log_name)})", flush=True)
        return run_command(list(args), self.env(), self.log_path(log_name))


def _link_raw(ws: Workspace, spec: DatasetSpec) -> None:
    """Make the raw dataset: convert the MSD layout, or link an nnU-Net raw dataset."""
    source = os.path.join(ws.data_root, spec.source_folder)
    if not os.path.isfile(os.path.join(source, "dataset.json")):
        raise FileNotFoundError(f"{source}/dataset.json not found: point --data at the shared data folder")
    target = ws.raw_dir(spec)
    if spec.kind == "raw":
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.islink(target):
            os.unlink(target)
        os.symlink(source, target)
        return
    # MSD: the converter reads <dir>/TaskXX_Name with imagesTr, labelsTr, imagesTs and dataset.json (a view of links)
    view = msd_view(source, os.path.join(ws.root, "msd_source"))
    if os.path.isdir(target):  # a conversion that did not finish (dataset.json is written last)
        shutil.rmtree(target)
    args = convert_command(view, spec.dataset_id, ws.n_proc)
    ws.run([nnunet_command(args[0])] + args[1:], f"convert_{spec.dataset_name}")


def prepare_dataset(ws: Workspace, spec: DatasetSpec, configurations: Sequence[str], preprocess: bool) -> None:
    """Raw data, fingerprint and plans (``nnUNetv2_plan_and_preprocess``), and, if ``preprocess``, the
    preprocessed data of ``configurations``; whatever exists from an earlier run is reused."""
    if not os.path.isfile(os.path.join(ws.raw_dir(spec), "dataset.json")):
        print(f"[workspace] raw dataset {spec.dataset_name}", flush=True)
        _link_raw(ws, spec)
    plans_file = os.path.join(ws.preprocessed_dir(spec), f"{PLANS_NAME}.json")
    if not os.path.isfile(plans_file):
        print(f"[workspace] planning {spec.dataset_name}", flush=True)
        args = [nnunet_command("nnUNetv2_plan_and_preprocess"), "-d", str(spec.dataset_id), "-c", *configurations,
                "-np", *[str(ws.n_proc)] * len(configurations), "-npfp", str(ws.n_proc), "--no_pbar"]
        if not preprocess:
            args.append("--no_pp")
        ws.run(args, f"plan_{spec.dataset_name}")
        if preprocess:
            for c in configurations:
                open(ws._marker(spec, c), "w").close()
    if preprocess:
        for c in configurations:
            if not os.path.isfile(ws._marker(spec, c)) and preprocessed_complete(ws, spec, c):
                print(f"[workspace] {spec.dataset_name} {c}: every case is preprocessed already", flush=True)
                open(ws._marker(spec, c), "w").close()
            if not os.path.isfile(ws._marker(spec, c)):
                print(f"[workspace] preprocessing {spec.dataset_name} {c}", flush=True)
                ws.run([nnunet_command("nnUNetv2_preprocess"), "-d", str(spec.dataset_id), "-c", c,
                        "-np", str(ws.n_proc)], f"preprocess_{spec.dataset_name}_{c}")
                open(ws._marker(spec, c), "w").close()


def preprocessed_complete(ws: Workspace, spec: DatasetSpec, configuration: str) -> bool:
    """True when the preprocessed folder of ``configuration`` (its plans' ``data_identifier``) holds every raw
    training case (nnU-Net writes a case's ``.pkl`` last): a workspace whose data nnU-Net's own commands made
    elsewhere (a copied ``nnUNet_preprocessed``) is used as it is."""
    plans_file = os.path.join(ws.preprocessed_dir(spec), f"{PLANS_NAME}.json")
    raw_json = os.path.join(ws.raw_dir(spec), "dataset.json")
    if not (os.path.isfile(plans_file) and os.path.isfile(raw_json)):
        return False
    with open(plans_file) as f:
        identifier = json.load(f).get("configurations", {}).get(configuration, {}).get("data_identifier")
    folder = os.path.join(ws.preprocessed_dir(spec), identifier or "")
    if not identifier or not os.path.isdir(folder):
        return False
    with open(raw_json) as f:
        ending = json.load(f).get("file_ending", ".nii.gz")
    labels = os.path.join(ws.raw_dir(spec), "labelsTr")
    cases = {n[: -len(ending)] for n in os.listdir(labels) if n.endswith(ending)} if os.path.isdir(labels) else set()
    done = {n[: -len(".pkl")] for n in os.listdir(folder) if n.endswith(".pkl")}
    return bool(cases) and cases <= done


@dataclass
class PlanContext:
    """One plan loaded the way nnU-Net's trainer loads it."""

    plan: PlanSpec
    plans_manager: object  # nnunetv2 PlansManager
    configuration_manager: object  # nnunetv2 ConfigurationManager
    dataset_json: dict
    num_input_channels: int
    num_output_channels: int
    raw_dir: str
    preprocessed_dir: str
    plans_file: str

    @property
    def patch_size(self) -> List[int]:
        return [int(v) for v in self.configuration_manager.patch_size]

    @property
    def planned_batch_size(self) -> int:
        return int(self.configuration_manager.batch_size)


def load_plan(ws: Workspace, plan: PlanSpec) -> PlanContext:
    """Plans manager, configuration, dataset.json, input channels and segmentation heads of ``plan``."""
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    pre = ws.preprocessed_dir(plan.dataset)
    plans_file = os.path.join(pre, f"{PLANS_NAME}.json")
    plans_manager = PlansManager(plans_file)
    cm = plans_manager.get_configuration(plan.configuration)
    with open(os.path.join(pre, "dataset.json")) as f:
        dataset_json = json.load(f)
    return PlanContext(plan, plans_manager, cm, dataset_json,
                       determine_num_input_channels(plans_manager, cm, dataset_json),
                       plans_manager.get_label_manager(dataset_json).num_segmentation_heads,
                       ws.raw_dir(plan.dataset), pre, plans_file)
