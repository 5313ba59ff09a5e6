"""One protocol run: the real ``nnUNetv2_train`` of a trainer's ``_budget`` variant with a seed, the real
``nnUNetv2_predict`` of the test set from ``checkpoint_final.pth``, Dice per class per case, and its record.

A run saves ``checkpoint_latest.pth`` after every epoch; one that was stopped (a closed session, a reboot) goes on
from its last checkpoint with nnU-Net's own ``nnUNetv2_train --c`` the next time the protocol meets it, so a
3-hour 3d_fullres run can span working sessions. A resumed run is not bit-identical to an uninterrupted one of the
same seed (the data loaders start again, reseeded): its record lists the epochs it resumed from."""
from __future__ import annotations

import json
import os
import platform
import shutil
import threading
import time
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from nnunet_msa.pipeline.commands import run_command
from nnunet_msa.pipeline.dice import dice_per_label, read_labels
from nnunet_msa.pipeline.training_log import epoch_times

from benchmarks.protocol.design import ProtocolPlan, RunKey, Split, signature_hashes, split_trainer, trainer_signature
from benchmarks.workspace import PLANS_NAME, Workspace, nnunet_command


class LoadSampler:
    """Samples the 1-minute load average every ``period`` seconds while a run goes on (a run's timing is only
    comparable when nothing else shared the cores: the record keeps the mean and max load)."""

    def __init__(self, period: float = 30.0) -> None:
        self.period, self.samples = period, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> "LoadSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> Dict[str, Optional[float]]:
        s = self.samples
        return {"mean": sum(s) / len(s) if s else None, "max": max(s) if s else None, "n": len(s)}


def test_images_dir(ws: Workspace, pplan: ProtocolPlan, split: Split) -> str:
    """A folder of links to the test cases' images (every channel), for ``nnUNetv2_predict -i``."""
    raw = ws.raw_dir(pplan.plan.dataset)
    with open(os.path.join(raw, "dataset.json")) as f:
        ending = json.load(f)["file_ending"]
    folder = os.path.join(ws.root, "protocol_test_images", f"{pplan.plan.dataset.dataset_name}_{split.digest}")
    os.makedirs(folder, exist_ok=True)
    images = os.path.join(raw, "imagesTr")
    wanted = set(split.test)
    for name in sorted(os.listdir(images)):
        case = name[: -len(ending) - 5] if name.endswith(ending) else None  # CASE_0000.nii.gz -> CASE
        if case in wanted and not os.path.lexists(os.path.join(folder, name)):
            os.symlink(os.path.join(images, name), os.path.join(folder, name))
    missing = wanted - {n[: -len(ending) - 5] for n in os.listdir(folder)}
    if missing:
        raise FileNotFoundError(f"test cases without images in {images}: {sorted(missing)[:5]}")
    return folder


def score_test_set(pred_dir: str, raw_dir: str, cases: List[str]) -> Dict[str, Dict[str, float]]:
    """{case: {label name: Dice}} for every test case (a missing prediction is an error)."""
    with open(os.path.join(raw_dir, "dataset.json")) as f:
        meta = json.load(f)
    ending = meta["file_ending"]
    labels = {name: int(v) for name, v in meta["labels"].items() if isinstance(v, int) and int(v) > 0}
    out: Dict[str, Dict[str, float]] = {}
    for case in cases:
        pred = os.path.join(pred_dir, case + ending)
        if not os.path.isfile(pred):
            raise FileNotFoundError(f"nnUNetv2_predict wrote no {pred}")
        d = dice_per_label(read_labels(pred), read_labels(os.path.join(raw_dir, "labelsTr", case + ending)),
                           list(labels.values()))
        out[case] = {name: d[v] for name, v in labels.items()}
    return out


#: what an unfinished run folder holds about its earlier attempts (the epochs each resume started from)
RESUMES_FILE = "resumes.json"


def checkpoint_epoch(fold: str) -> Optional[int]:
    """The epoch a ``nnUNetv2_train --c`` in ``fold`` would start from (its ``checkpoint_final.pth``, else
    ``checkpoint_latest.pth``, as nnU-Net looks), or None when there is no checkpoint to go on from."""
    for name in ("checkpoint_final.pth", "checkpoint_latest.pth"):
        path = os.path.join(fold, name)
        if os.path.isfile(path):
            import torch

            try:
                return int(torch.load(path, map_location="cpu", weights_only=False)["current_epoch"])
            except Exception:  # a checkpoint cut off mid-write: nothing to go on from
                return None
    return None


def execute_run(ws: Workspace, pplan: ProtocolPlan, split: Split, key: RunKey, device: str = "cpu",
                n_proc_da: int = 2, keep_checkpoint: bool = True, resume: bool = True,
                log=print, n_proc_predict: int = 1) -> Dict[str, Any]:
    """Train, predict and score one run; returns its record (not yet written). ``resume``: an unfinished run of
    the same key goes on from its last checkpoint (else, and without a checkpoint, it starts clean).
    ``n_proc_predict``: ``nnUNetv2_predict``'s ``-npp`` and ``-nps`` (0: in its own process, for tiny runs)."""
    dataset = pplan.plan.dataset
    run_root = os.path.join(ws.root, "protocol_runs", key.plan, key.name)
    results = os.path.join(run_root, "nnUNet_results")
    budget_trainer = f"{split_trainer(key.trainer)[0]}_budget"
    configuration = pplan.configuration_for(key.trainer)
    model = os.path.join(results, dataset.dataset_name, f"{budget_trainer}__{PLANS_NAME}__{configuration}")
    fold = os.path.join(model, "fold_0")
    resumes_path = os.path.join(run_root, RESUMES_FILE)
    from_epoch = checkpoint_epoch(fold) if resume else None
    if from_epoch is None and os.path.isdir(run_root):
        shutil.rmtree(run_root)  # an unfinished earlier attempt with nothing to go on from: start clean
    resumed: List[int] = []
    if from_epoch is not None:
        resumed = (json.load(open(resumes_path)) if os.path.isfile(resumes_path) else []) + [from_epoch]
        os.makedirs(run_root, exist_ok=True)
        with open(resumes_path, "w") as f:
            json.dump(resumed, f)
        log(f"  resume: an earlier attempt stopped after {from_epoch} epoch(s); going on from its checkpoint")
    epochs = key.iterations // pplan.iterations_per_epoch
    env = ws.env(epochs=epochs, iterations=pplan.iterations_per_epoch, val_iterations=1)
    env.update({"nnUNet_results": results, "nnUNetMSA_seed": str(key.seed), "nnUNet_n_proc_DA": str(n_proc_da),
                "nnUNetMSA_save_every": "1"})
    train_args = [nnunet_command("nnUNetv2_train"), str(dataset.dataset_id), configuration, "0",
                  "-tr", budget_trainer, "-device", device] + (["--c"] if from_epoch is not None else [])
    log(f"  $ nnUNet_results={results} nnUNetMSA_seed={key.seed} {' '.join(train_args[1:])}")
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with LoadSampler() as load:
        train_wall = run_command(train_args, env, os.path.join(run_root, "train.log"), append=bool(resumed))
    times = epoch_times(fold)
    pred_dir = os.path.join(run_root, "test_predictions")
    predict_args = [nnunet_command("nnUNetv2_predict"), "-i", test_images_dir(ws, pplan, split), "-o", pred_dir,
                    "-d", str(dataset.dataset_id), "-c", configuration, "-tr", budget_trainer, "-f", "0",
                    "-chk", "checkpoint_final.pth", "-device", device, "-npp", str(n_proc_predict),
                    "-nps", str(n_proc_predict)]
    predict_wall = run_command(predict_args, env, os.path.join(run_root, "predict.log"))
    dice = score_test_set(pred_dir, ws.raw_dir(dataset), list(split.test))
    if not keep_checkpoint:
        shutil.rmtree(results)
    import torch
    import nnunetv2

    return {
        "key": key.as_dict(),
        "signature": trainer_signature(key.trainer),
        "budget_trainer": budget_trainer,
        "configuration": configuration,
        "epochs": epochs,
        "iterations_per_epoch": pplan.iterations_per_epoch,
        "training_time_s": sum(times),
        "epoch_times_s": times,
        "train_wall_s": train_wall,
        "resumed_from_epochs": resumed,
        "predict_wall_s": predict_wall,
        "n_proc_DA": n_proc_da,
        "load_during_training": load.summary(),
        "test_dice": dice,
        "test_cases": list(split.test),
        "n_train_cases": len(split.train),
        "started_utc": started,
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": platform.processor() or platform.machine(), "cpu_model": cpu_model(), "cores": os.cpu_count(),
                    "torch": torch.__version__, "nnunetv2": getattr(nnunetv2, "__version__", "?"), "device": device},
        "run_folder": run_root,
    }


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere): training times of records are
    compared only between runs on the same model (``report.Row.cpus``)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def load_record(path: str) -> Optional[Dict[str, Any]]:
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_record(path: str, record: Dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1, sort_keys=True)
    os.replace(tmp, path)  # a record exists only once it is complete


def run_cached(ws: Workspace, pplan: ProtocolPlan, split: Split, key: RunKey, results_dir: str,
               device: str = "cpu", n_proc_da: int = 2, resume: bool = True, log=print,
               n_proc_predict: int = 1) -> Dict[str, Any]:
    """The record of ``key``: read from ``results_dir`` if there, else trained, predicted and written."""
    path = key.record_path(results_dir)
    for existing in [path] + key.same_run_paths(results_dir, signature_hashes(key.trainer)):
        record = load_record(existing)
        if record is not None:
            log(f"  cached: {key.name}" + ("" if existing == path else f" (as {os.path.basename(existing)})"))
            return record
    t0 = time.time()
    log(f"  run: {key.plan} {key.trainer} {key.iterations} its seed {key.seed}")
    record = execute_run(ws, pplan, split, key, device, n_proc_da, resume=resume, log=log,
                         n_proc_predict=n_proc_predict)
    write_record(path, record)
    fg = [sum(v.values()) / len(v) for v in record["test_dice"].values()]
    log(f"  done in {time.time() - t0:.0f} s: test Dice {sum(fg) / len(fg):.4f} over {len(fg)} cases, "
        f"training {record['training_time_s']:.0f} s")
    return record
