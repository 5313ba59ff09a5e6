"""The nnU-Net plumbing the demo, the benchmarks and the tests share (``nnunet_msa/pipeline``): MSD views for the
converter, group-preserving picks, console-script lookup, and the training-progress reader."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from nnunet_msa.pipeline.commands import console_script, run_command
from nnunet_msa.pipeline.msd import convert_command, converted_dataset_name, msd_cases, msd_view
from nnunet_msa.pipeline.splits import group_of, pick_groups
from nnunet_msa.pipeline.training_log import EpochProgress, epoch_times, pseudo_dice


def test_msd_view_of_the_whole_task_links_and_adds_an_empty_imagests(shared_data: Path, tmp_path) -> None:
    view = msd_view(str(shared_data / "Task04_Hippocampus"), str(tmp_path))
    assert Path(view) == tmp_path / "Task04_Hippocampus"
    for name in ("imagesTr", "labelsTr", "dataset.json"):
        assert os.path.islink(os.path.join(view, name))
    assert os.listdir(os.path.join(view, "imagesTs")) == []
    assert msd_view(str(shared_data / "Task04_Hippocampus"), str(tmp_path)) == view  # idempotent
    assert convert_command(view, 4, 2) == ["nnUNetv2_convert_MSD_dataset", "-i", view, "-overwrite_id", "4",
                                           "-np", "2"]
    assert converted_dataset_name(view) == "Dataset004_Hippocampus"
    assert converted_dataset_name(view, 901) == "Dataset901_Hippocampus"


def test_msd_subset_view_holds_the_chosen_cases_and_their_dataset_json(shared_data: Path, tmp_path) -> None:
    source = shared_data / "Task04_Hippocampus"
    cases = msd_cases(str(source))
    assert len(cases) == 200 and all(not c.startswith((".", "_")) for c in cases)
    train, test = cases[:3], cases[3:5]
    view = msd_view(str(source), str(tmp_path), train=train, test=test)
    assert sorted(f[:-7] for f in os.listdir(os.path.join(view, "imagesTr"))) == train
    assert sorted(f[:-7] for f in os.listdir(os.path.join(view, "labelsTr"))) == train
    assert sorted(f[:-7] for f in os.listdir(os.path.join(view, "imagesTs"))) == test
    meta = json.loads(Path(view, "dataset.json").read_text())
    assert meta["numTraining"] == 3 and meta["numTest"] == 2
    assert [t["image"] for t in meta["training"]] == [f"./imagesTr/{c}.nii.gz" for c in train]


def test_msd_view_refuses_a_folder_not_named_like_an_msd_task(tmp_path) -> None:
    bad = tmp_path / "Hippocampus"
    bad.mkdir()
    with pytest.raises(ValueError, match="TaskNN_Name"):
        msd_view(str(bad), str(tmp_path / "out"))
    with pytest.raises(FileNotFoundError, match="imagesTr"):
        msd_cases(str(bad))


def test_pick_groups_keeps_patients_together_and_is_seeded() -> None:
    ids = [f"patient{p:03d}_frame{f:02d}" for p in range(10) for f in (1, 12)]
    pattern = r"^(.*?)(?:_frame\d+)?$"
    picked, rest = pick_groups(ids, 3, seed=5, pattern=pattern)
    assert len(picked) == 4 and sorted(picked + rest) == sorted(ids)  # two whole patients cover 3 cases
    assert not {group_of(c, pattern) for c in picked} & {group_of(c, pattern) for c in rest}
    assert pick_groups(list(reversed(ids)), 3, seed=5, pattern=pattern)[0] == picked


def test_console_script_finds_nnunets_scripts_and_names_the_fix_when_missing() -> None:
    path = console_script("nnUNetv2_train")
    assert os.path.isfile(path) and os.access(path, os.X_OK)
    with pytest.raises(FileNotFoundError, match="install nnunetv2"):
        console_script("nnUNetv2_no_such_command")


def test_run_command_hands_each_line_to_the_reader(tmp_path) -> None:
    lines = []
    code = "print('a: Epoch 0'); print('a: train_loss -0.5'); print('a: Pseudo dice [np.float32(0.25)]'); " \
           "print('a: Epoch time: 2.0 s')"
    progress = EpochProgress(epochs=3)
    run_command([sys.executable, "-c", code], dict(os.environ), str(tmp_path / "log.txt"),
                on_line=lambda line: lines.append(progress.feed(line)))
    assert [x for x in lines if x] == ["epoch 1/3: train loss -0.500, pseudo-Dice 0.25, 2.0 s/epoch, "
                                       "about 4 s left"]
    assert (tmp_path / "log.txt").read_text().count("\n") == 4


def test_pseudo_dice_reads_every_numpy_print_form() -> None:
    assert pseudo_dice("x: Pseudo dice [0.5, 0.25]") == [0.5, 0.25]
    assert pseudo_dice("x: Pseudo dice [np.float32(0.875), np.float64(0.5)]") == [0.875, 0.5]
    values = pseudo_dice("x: Pseudo dice [np.float32(nan)]")
    assert len(values) == 1 and values[0] != values[0]
    assert pseudo_dice("x: val_loss 0.3") is None


def test_epoch_times_of_a_resumed_run_count_each_epoch_once_in_order(tmp_path) -> None:
    """Two logs of one fold: the first stopped after logging epoch 1 but before its checkpoint; ``--c`` resumed
    from epoch 0's checkpoint and trained epoch 1 again (its second time counts). nnU-Net's log names do not
    zero-pad the day, so name order is not time order."""
    def log(name: str, epochs: dict) -> None:
        (tmp_path / name).write_text("".join(f"2026-12-06 10:00:00.0: Epoch {e}\n2026-12-06 10:00:01.0: "
                                             f"train_loss -0.1\n2026-12-06 10:00:02.0: Epoch time: {t} s\n"
                                             for e, t in epochs.items()))
    log("training_log_2026_12_6_09_00_00.txt", {0: 10.0, 1: 11.0})
    log("training_log_2026_12_10_08_00_00.txt", {1: 12.5, 2: 13.0})
    assert epoch_times(str(tmp_path)) == [10.0, 12.5, 13.0]
    assert epoch_times(str(tmp_path / "training_log_2026_12_6_09_00_00.txt")) == [10.0, 11.0]


def test_paired_bootstrap_against_a_hand_computed_example() -> None:
    """Differences 0, 0, 3 over three cases (one run each): a replicate's mean is 0, 1, 2 or 3 with probabilities
    8/27, 12/27, 6/27, 1/27, so its 25th and 75th percentiles are 0 and 2, and 2.5th and 97.5th 0 and 3; the
    mean is 1. Resampling folds as blocks first can only widen it: blocks {0, 0} and {3} give means 0 or 3 per
    draw of one block."""
    from nnunet_msa.analysis.paired_bootstrap import paired_difference

    b, a = np.array([[0.0, 0.0, 3.0]]), np.zeros((1, 3))
    half = paired_difference(b, a, n_boot=20000, level=0.5)
    assert (half.mean, half.low, half.high) == (1.0, 0.0, 2.0)
    full = paired_difference(b, a, n_boot=20000, level=0.95)
    assert (full.low, full.high) == (0.0, 3.0) and full.verdict == "no difference shown"
    assert paired_difference(np.array([[0.6, 0.7]]), np.array([[0.5, 0.5]]), n_boot=2000).verdict == "ahead"
    assert paired_difference(np.array([[0.4, 0.4]]), np.array([[0.5, 0.5]]), n_boot=2000).verdict == "behind"
    blocked = paired_difference(b, a, n_boot=20000, level=0.95, blocks=["f0", "f0", "f1"])
    assert blocked.low <= full.low and blocked.high >= full.high
