"""Runs of nnU-Net's real commands shared by several e2e test modules, made once per pytest session:

- ``train(...)``: ``nnUNetv2_train DATASET CONFIG FOLD -tr TRAINER -device cpu --npz`` of any (trainer, configuration,
  fold), on the budget of ``BUDGETS``, several folds at a time (``run_jobs``) as nnU-Net's documentation runs folds
  in parallel on several GPUs. ``--npz`` keeps the validation probabilities that ``nnUNetv2_find_best_configuration``
  needs to ensemble; nothing else in the run changes with it, so the fold-0 models of ``test_e2e_hippocampus``
  (prediction, export, explain) and the folds of ``test_e2e_pipeline`` are the same runs.
- ``instruction_commands`` / ``follow_instructions``: the commands of nnU-Net's ``inference_instructions.txt`` with
  its placeholder folders substituted.

Nothing here is imported by the package; nothing here writes outside the test workspace."""
from __future__ import annotations

import os
import shlex
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import e2e_helpers as h

MSA2 = "nnUNetTrainerMSA2"
MSA2_BUDGET = f"{MSA2}_budget"
NNUNET_BUDGET = "nnUNetTrainer_budget"

#: (epochs, iterations per epoch, validation iterations per epoch) per (trainer, planned configuration). MSA2 2d:
#: 2 iterations, so that the SACM temperature annealing (first max(1, ceil(0.1 * 2)) = 1 iteration) is over and the
#: saved τ is 1 (tests/test_e2e_hippocampus.py checks it); everything else 1 iteration.
BUDGETS: Dict[Tuple[str, str], Tuple[int, int, int]] = {
    (MSA2_BUDGET, "2d"): (1, 2, 1), (MSA2_BUDGET, "3d_fullres"): (1, 1, 1),
    (NNUNET_BUDGET, "2d"): (1, 1, 1), (NNUNET_BUDGET, "3d_fullres"): (1, 1, 1),
}

#: nnU-Net commands run at the same time by ``run_jobs`` (2 cores: one training's start-up, data loading and
#: export are single-threaded, so two overlap well)
PARALLEL = max(1, int(os.environ.get("NNUNET_MSA_TEST_PARALLEL", "2")))


@dataclass
class Job:
    args: List[str]
    env: Dict[str, str]
    log: Path
    label: str


def _run_measured(job: Job) -> h.Ran:
    """Run one command, its output into ``job.log``; wall time and the CPU time of it and its children (wait4, so
    commands running at the same time do not count each other's CPU)."""
    args = list(job.args)
    if os.sep not in args[0]:
        args[0] = h.console_script(args[0])
    job.log.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    with open(job.log, "w") as out:
        proc = subprocess.Popen(args, env=job.env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.time() - start
    output = job.log.read_text(errors="replace")
    h.TIMINGS.append((job.label, wall, usage.ru_utime + usage.ru_stime))
    return h.Ran(args, proc.returncode, output, wall, usage.ru_utime + usage.ru_stime)


def run_jobs(jobs: Sequence[Job], parallel: int = PARALLEL, check: bool = True) -> List[h.Ran]:
    """Run ``jobs``, ``parallel`` at a time; with ``check``, fail (after all have finished) naming the first
    command that exited non-zero and quoting its last lines."""
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(jobs) or 1))) as pool:
        ran = list(pool.map(_run_measured, jobs))
    if check:
        for job, r in zip(jobs, ran):
            if r.returncode != 0:
                tail = "\n".join(r.output.splitlines()[-40:])
                raise AssertionError(f"command failed (exit {r.returncode}): {' '.join(r.args)}\n--- last output ---\n"
                                     f"{tail}\n(full log: {job.log})")
    return ran


# ------------------------------------------------------------------------------------------------ training
@dataclass
class Trained:
    trainer: str
    config: str            # the configuration trained (e.g. the small-batch 2d_bs4)
    fold: int
    model_dir: Path
    fold_dir: Path
    output: str
    epochs: int
    iterations: int


_trained: Dict[Tuple[str, str, str, int], Trained] = {}


def model_dir(ws, ds: h.Dataset, trainer: str, config: str, plans: str = "nnUNetPlans") -> Path:
    return ws.results / ds.name / f"{trainer}__{plans}__{config}"


def training_env(ws, budget: Tuple[int, int, int], validation: str = "no_mirroring") -> Dict[str, str]:
    """The workspace environment with the budget; augmentation in the main process (``nnUNet_n_proc_DA=0``:
    nnU-Net's background workers would prepare many batches for a run that uses one or two); ``validation`` as in
    ``e2e_helpers.with_budget``."""
    env = h.with_budget(ws.env, *budget, validation=validation)
    env["nnUNet_n_proc_DA"] = "0"
    return env


def _validation(trainer: str, base: str, fold: int, plans: str) -> str:
    """MSA2's fold 0 of 2d and 3d_fullres (the models of tests/test_e2e_hippocampus.py) validates as nnU-Net does,
    with test-time mirroring (MSA2 under nnU-Net's mirrored sliding window); every other run without it."""
    full = trainer == MSA2_BUDGET and fold == 0 and base in ("2d", "3d_fullres") and plans == "nnUNetPlans"
    return "full" if full else "no_mirroring"


def train(ws, ds: h.Dataset, runs: Sequence[Tuple[str, str, int]], plans: str = "nnUNetPlans",
          budgets: Optional[Dict[Tuple[str, str], Tuple[int, int, int]]] = None) -> Dict[Tuple[str, str, int], Trained]:
    """``nnUNetv2_train`` of each (trainer, planned configuration, fold) in ``runs`` not trained yet in this session
    (``ds.configs`` maps the planned configuration to the one trained, e.g. 2d -> 2d_bs4), ``PARALLEL`` at a time;
    returns every run asked for."""
    budgets = budgets or BUDGETS
    todo, jobs = [], []
    for trainer, base, fold in runs:
        key = (ds.name, trainer, base, fold)
        if key in _trained or key in todo:
            continue
        config = ds.configs.get(base, base)
        budget = budgets[(trainer, base)]
        todo.append(key)
        jobs.append(Job(["nnUNetv2_train", str(ds.dataset_id), config, str(fold), "-tr", trainer, "-p", plans,
                         "-device", "cpu", "--npz"], training_env(ws, budget, _validation(trainer, base, fold, plans)),
                        ws.logs / f"train_{ds.name}_{trainer}_{plans}_{config}_fold{fold}.log",
                        f"nnUNetv2_train {ds.dataset_id} {config} {fold} -tr {trainer} -p {plans} --npz"))
    for key, job, ran in zip(todo, jobs, run_jobs(jobs)):
        _, trainer, base, fold = key
        config = ds.configs.get(base, base)
        md = model_dir(ws, ds, trainer, config, plans)
        epochs, iterations, _ = budgets[(trainer, base)]
        _trained[key] = Trained(trainer, config, fold, md, md / f"fold_{fold}", ran.output, epochs, iterations)
    return {(t, b, f): _trained[(ds.name, t, b, f)] for t, b, f in runs}


# ------------------------------------------------------------------------------------------------ instructions
PLACEHOLDER_PREFIXES = ("INPUT_FOLDER", "OUTPUT_FOLDER")


def instruction_commands(text: str) -> List[List[str]]:
    """The commands (argument lists) of an nnU-Net ``inference_instructions.txt``, in order."""
    return [shlex.split(line) for line in text.splitlines() if line.strip().startswith("nnUNetv2_")]


def substitute(command: List[str], folders: Dict[str, Path]) -> List[str]:
    """``command`` with every placeholder argument (INPUT_FOLDER, OUTPUT_FOLDER, OUTPUT_FOLDER_MODEL_1, ...) replaced
    by its folder; a placeholder without a folder fails."""
    out = []
    for arg in command:
        if arg.startswith(PLACEHOLDER_PREFIXES):
            assert arg in folders, f"no folder for the placeholder {arg} in {' '.join(command)}"
            out.append(str(folders[arg]))
        else:
            out.append(arg)
    return out
