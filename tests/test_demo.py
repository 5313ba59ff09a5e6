"""``nnunet-msa demo``: the synthetic generator, the progress lines, the workspace check (fast) and one end-to-end
run of the real nnU-Net commands on a tiny budget (slow, marked e2e): its epoch lines while nnU-Net trains, the
workspace named at start and end, the closing table and its sentences."""
from __future__ import annotations

import io
import json
import math
import os
import pty
import re
import select
import subprocess
import sys
import time

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_msa.cli.demo import Progress
from nnunet_msa.pipeline.commands import run_command
from nnunet_msa.pipeline.demo_progress import DemoClock, TrainingMonitor, duration, unbuffered
from nnunet_msa.pipeline.demo_run import DEFAULT_WORKSPACE, nnunet_msa_checkout, workspace_warning
from nnunet_msa.pipeline.synthetic_dataset import (LABELS, SyntheticSpec, case_rng, cross_section_areas, make_case,
                                                   write_synthetic_dataset)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------------------------------------ generator
@pytest.mark.parametrize("index", range(6))
def test_case_has_both_labels_and_a_spindle_whose_area_varies_along_z(index: int) -> None:
    spec = SyntheticSpec(shape=(24, 48, 48))
    image, label = make_case(case_rng(3, index), spec)
    assert image.shape == label.shape == (24, 48, 48)
    assert image.dtype == np.float32 and label.dtype == np.uint8
    assert set(np.unique(label)) == {0, 1, 2}
    areas = cross_section_areas(label, 1)
    present = areas[areas > 0]
    assert len(present) >= 5, "the spindle spans several slices"
    assert present.max() >= 3 * present.min(), "its cross-section grows and shrinks along z"
    peak = int(np.argmax(areas))
    assert areas[:peak + 1].min() < areas[peak] and areas[peak:].min() < areas[peak], "peak is inside, not at an end"
    # intensity contrast between the labels, above the noise of the background
    bg, l1, l2 = (image[label == v].mean() for v in (0, 1, 2))
    assert l1 > bg > l2
    assert min(l1 - bg, bg - l2) > image[label == 0].std()


def test_generator_is_deterministic_given_a_seed() -> None:
    a = make_case(case_rng(7, 2))
    b = make_case(case_rng(7, 2))
    c = make_case(case_rng(8, 2))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_written_dataset_is_nnunet_raw_format(tmp_path) -> None:
    spec = SyntheticSpec(shape=(16, 32, 40), spacing=(3.0, 0.8, 0.7))
    ds = write_synthetic_dataset(str(tmp_path), 123, n_train=3, n_test=2, seed=1, spec=spec)
    assert os.path.basename(ds.dataset_dir) == "Dataset123_MSA2Demo"
    with open(os.path.join(ds.dataset_dir, "dataset.json")) as f:
        meta = json.load(f)
    assert meta["labels"] == LABELS and meta["numTraining"] == 3 and meta["file_ending"] == ".nii.gz"
    assert meta["channel_names"] == {"0": "synthetic"}
    assert sorted(os.listdir(ds.images_tr)) == [f"{c}_0000.nii.gz" for c in ds.train_ids]
    assert sorted(os.listdir(ds.labels_tr)) == [f"{c}.nii.gz" for c in ds.train_ids]
    assert sorted(os.listdir(ds.images_ts)) == [f"{c}_0000.nii.gz" for c in ds.test_ids]
    assert sorted(os.listdir(ds.labels_ts)) == [f"{c}.nii.gz" for c in ds.test_ids]
    assert not set(ds.train_ids) & set(ds.test_ids)
    img = sitk.ReadImage(os.path.join(ds.images_tr, f"{ds.train_ids[0]}_0000.nii.gz"))
    assert img.GetSize() == (40, 32, 16)  # SimpleITK reports x, y, z
    assert np.allclose(img.GetSpacing(), (0.7, 0.8, 3.0))
    # the same seed writes the same case, whatever else is in the dataset
    image0, label0 = make_case(case_rng(1, 0), spec)
    assert np.allclose(sitk.GetArrayFromImage(img), image0)
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(ds.labels_tr, f"{ds.train_ids[0]}"
                                                                              ".nii.gz"))), label0)


# --------------------------------------------------------------------------------------------------- progress
def _epoch(n: int, dice: str, seconds: float) -> list:
    """nnU-Net's lines of one epoch, as print_to_log_file writes them (nnunetv2 2.6, numpy 2)."""
    stamp = "2026-03-01 10:00:00.123456:"
    return [f"{stamp} ", f"{stamp} Epoch {n}", f"{stamp} Current learning rate: 0.01", f"{stamp} train_loss -0.1",
            f"{stamp} val_loss -0.2", f"{stamp} Pseudo dice {dice}", f"{stamp} Epoch time: {seconds} s"]


def test_epoch_lines_name_trainer_pseudo_dice_ema_epoch_time_and_time_left() -> None:
    clock = DemoClock(["nnUNetTrainer_budget", "nnUNetTrainerMSA2_budget"])
    first = TrainingMonitor("nnUNetTrainer_budget", 0, 3, ["spindle", "blob"], clock)
    lines = [first.feed(x) for x in _epoch(0, "[np.float32(0.5), np.float32(0.25)]", 10.0)
             + ["2026-03-01 10:00:00.2: Yayy! New best EMA pseudo Dice: 0.375"]
             + _epoch(1, "[np.float32(0.75), np.float32(nan)]", 12.0)]
    assert [x for x in lines if x] == [
        "nnUNetTrainer_budget epoch 1/3: pseudo Dice spindle 0.50 blob 0.25 (EMA 0.38), epoch 10.0 s; "
        "time left: training ~20 s, demo estimating",
        # nnU-Net's EMA: 0.9 * 0.375 + 0.1 * nanmean(0.75, nan)
        "nnUNetTrainer_budget epoch 2/3: pseudo Dice spindle 0.75 blob nan (EMA 0.41), epoch 12.0 s; "
        "time left: training ~11 s, demo estimating"]
    clock.trainer_finished(40.0)  # from its last epoch to its held-out Dice
    second = TrainingMonitor("nnUNetTrainerMSA2_budget", 1, 3, ["spindle", "blob"], clock)
    out = [second.feed(x) for x in _epoch(0, "[0.5, 0.25]", 30.0)]
    assert out[-1].endswith("epoch 30.0 s; time left: training ~1 min 00 s, demo ~1 min 40 s")
    assert duration(3725) == "1 h 02 min"


def test_epoch_lines_arrive_as_each_epoch_ends(tmp_path) -> None:
    # nnU-Net prints without flushing; through a pipe its lines would come in 8 KB blocks, here at the exit
    code = "import time\n" + "".join(f"print({x!r})\n" for x in _epoch(0, "[0.5]", 1.0)) + "time.sleep(3)\nprint('end')"
    arrived = []
    start = time.time()
    run_command([sys.executable, "-c", code], unbuffered(dict(os.environ)), str(tmp_path / "log.txt"),
                on_line=lambda line: arrived.append((line, time.time() - start)))
    epoch_end = next(t for line, t in arrived if "Epoch time: 1.0 s" in line)
    assert arrived[-1][0] == "end" and arrived[-1][1] - epoch_end > 2.0, arrived


def _read_all(reader: io.RawIOBase) -> str:
    """What was written to a terminal so far (a pseudo-terminal hands it over in pieces)."""
    chunks = []
    while select.select([reader], [], [], 0.5)[0]:
        chunks.append(reader.read(4096))
    return b"".join(chunks).decode()


def test_live_lines_update_in_place_on_a_terminal_and_are_plain_lines_otherwise(monkeypatch) -> None:
    plain = io.StringIO()
    progress = Progress(plain)
    progress.live("epoch 1/2")
    progress.live("epoch 2/2")
    progress.say("trained")
    assert re.fullmatch(r"\[ +0:0\d\] epoch 1/2\n\[ +0:0\d\] epoch 2/2\n\[ +0:0\d\] trained\n", plain.getvalue())
    monkeypatch.setenv("COLUMNS", "200")
    leader, follower = pty.openpty()
    with open(leader, "rb", buffering=0) as reader, open(follower, "w") as terminal:
        progress = Progress(terminal)
        progress.live("epoch 1/2")
        progress.live("epoch 2/2")
        progress.say("trained")
        written = _read_all(reader)
    assert "\r\x1b[K" in written and written.count("\n") == 2, repr(written)  # one line updated, then one more
    assert written.index("epoch 1/2") < written.index("\r\x1b[K[", written.index("epoch 1/2"))


# -------------------------------------------------------------------------------------------------- workspace
@pytest.mark.skipif(nnunet_msa_checkout(REPO) is None, reason="the tests do not run from a git checkout")
def test_a_workspace_inside_the_checkout_gets_a_warning_and_one_outside_does_not(tmp_path) -> None:
    inside = os.path.join(REPO, "demo_workspace_that_is_not_created")
    warning = workspace_warning(inside)
    assert warning is not None and warning.startswith("warning:")
    assert REPO in warning and DEFAULT_WORKSPACE in warning and "git does not ignore it" in warning
    assert "git ignores it" in workspace_warning(os.path.join(REPO, "nnunet_msa_demo"))  # .gitignore's pattern
    assert workspace_warning(str(tmp_path)) is None
    assert not os.path.exists(inside)


# -------------------------------------------------------------------------------------------------- end to end
def _geometry(path: str) -> tuple:
    img = sitk.ReadImage(path)
    return (img.GetSize(),) + tuple(tuple(np.round(v, 5).tolist()) for v in (img.GetSpacing(), img.GetOrigin(),
                                                                              img.GetDirection()))


@pytest.mark.e2e
def test_demo_runs_the_real_nnunet_commands_for_both_trainers(tmp_path) -> None:
    workspace = tmp_path / "ws"
    cmd = [sys.executable, "-m", "nnunet_msa.cli.main", "demo", "--workspace", str(workspace),
           "--cases", "4", "--test-cases", "2", "--val-cases", "1", "--shape", "16,32,32",
           "--epochs", "1", "--iterations", "1", "--val-iterations", "1", "--batch-size", "2", "--processes", "1"]
    env = dict(os.environ)
    bindir = os.path.dirname(sys.executable)  # the nnUNetv2_* scripts of this interpreter's environment
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"demo failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    out = proc.stdout
    assert "nnUNetTrainerMSA2_budget" in out and "mean Dice" in out
    # the workspace is named at the start and at the end; outside any checkout, no warning
    assert out.count(f"workspace: {workspace}") == 2 and "warning" not in out, out[:3000]
    # progress while training, read from nnU-Net's own output: one line per epoch and trainer; the whole demo's time
    # left is "estimating" while a trainer is still to come, then a figure measured from the first trainer
    epoch_line = (r"  {} epoch 1/1: pseudo Dice spindle \S+ blob \S+ \(EMA \S+\), epoch [0-9.]+ s; "
                  r"time left: training ~0 s, demo {}\n")
    assert len(re.findall(epoch_line.format("nnUNetTrainer_budget", "estimating"), out)) == 1, out[-5000:]
    left = re.findall(epoch_line.format("nnUNetTrainerMSA2_budget", r"~((?:\d+ min )?\d+) s"), out)
    assert len(left) == 1, out[-5000:]
    assert int(left[0].replace(" min ", "")) > 0

    with open(workspace / "results.json") as f:
        result = json.load(f)
    assert set(result["trainers"]) == {"nnUNetTrainer_budget", "nnUNetTrainerMSA2_budget"}
    assert (workspace / "results.md").is_file()
    assert result["labels"] == {"spindle": 1, "blob": 2}
    test_cases = result["test_cases"]
    assert len(test_cases) == 2 and not set(test_cases) & set(result["train_cases"] + result["val_cases"])

    images = os.path.join(workspace, "nnUNet_raw", result["dataset"], "imagesTs")
    for trainer, r in result["trainers"].items():
        for name in ("spindle", "blob"):
            d = r["dice"][name]
            assert d is not None and 0.0 <= d <= 1.0, (trainer, name, d)
        assert r["mean_dice"] is None or 0.0 <= r["mean_dice"] <= 1.0
        assert r["train_seconds"] > 0 and r["predict_seconds"] > 0
        assert all(not math.isnan(v) for v in r["epoch_seconds"]) and len(r["epoch_seconds"]) == 1
        for case in test_cases:
            pred = os.path.join(r["predictions"], f"{case}.nii.gz")
            assert os.path.isfile(pred), pred
            assert _geometry(pred) == _geometry(os.path.join(images, f"{case}_0000.nii.gz"))
            values = set(np.unique(sitk.GetArrayFromImage(sitk.ReadImage(pred))))
            assert values <= {0, 1, 2}

    # the closing table: per trainer Dice per label and mean, training time and its ratio to nnU-Net's default
    closing = out[out.index("What you just saw"):]
    runs = result["trainers"]
    for trainer, r in runs.items():
        row = re.search(rf"^{trainer} +(\S+) +(\S+) +(\S+) +((?:\d+ min )?\d+ s) +(\d+\.\d\d)x", closing, re.M)
        assert row is not None, closing
        assert row.group(1) == f"{r['dice']['spindle']:.3f}" and row.group(4) == duration(r["train_seconds"])
        ratio = r["train_seconds"] / runs["nnUNetTrainer_budget"]["train_seconds"]
        assert row.group(5) == f"{ratio:.2f}"
    # and what it means: the run, the ratio, not an accuracy result, the next commands; the same in results.md
    md = (workspace / "results.md").read_text()
    for text in (closing, md):
        assert "2 held-out cases" in text and "1 epoch x 1 iteration each" in text
        assert "nnUNetTrainerMSA2_budget's training took" in text and "as long as nnUNetTrainer_budget's" in text
        assert "not an accuracy result" in text and "docs/results.md" in text
        for command in ("nnunet-msa plan -d DATASET", "nnUNetv2_train DATASET 2d FOLD -tr nnUNetTrainerMSA2",
                        "nnunet-msa compare -d DATASET"):
            assert command in text
    print(out)  # the demo's output, for the record (pytest -s)
