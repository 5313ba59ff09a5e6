"""The accuracy protocol (``benchmarks.protocol``): its split, its interval arithmetic, its cache, and the whole
protocol through the real nnU-Net commands on a tiny budget."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks.protocol.bootstrap import interpolate_budgets, paired_difference
from benchmarks.protocol.design import make_split
from nnunet_msa.pipeline.splits import group_of, holdout_split, separator_pattern

REPO = Path(__file__).resolve().parents[1]

ACDC_IDS = [f"patient{p:03d}_frame{f:02d}" for p in range(1, 31) for f in (1, 12)]
HIPPO_IDS = [f"hippocampus_{i:03d}" for i in range(1, 201)]


def test_split_is_deterministic_and_disjoint_by_patient():
    a = make_split(ACDC_IDS, "_frame")
    b = make_split(list(reversed(ACDC_IDS)), "_frame")
    assert a == b, "the split depends on the order of the ids"
    train, val, test = set(a.train), set(a.validation), set(a.test)
    assert not (train & val or train & test or val & test)
    assert train | val | test == set(ACDC_IDS)
    patients = lambda cases: {group_of(c, separator_pattern("_frame")) for c in cases}  # noqa: E731
    assert not (patients(train) & patients(test)), "a patient's frames on both sides of the test split"
    assert not (patients(train) & patients(val))
    assert len(patients(test)) == round(0.25 * 30)
    assert all(len(patients([c for c in a.test if c.startswith(p)])) == 1 for p in patients(test))
    # another seed gives another test set
    other_pool, other_test = holdout_split(ACDC_IDS, 0.25, separator_pattern("_frame"), seed=1)
    assert set(other_test) != test


def test_hippocampus_split_holds_back_a_quarter():
    s = make_split(HIPPO_IDS, None)
    assert len(s.test) == 50 and len(s.validation) == 5 and len(s.train) == 145
    assert make_split(HIPPO_IDS, None, max_test=3).test == s.test[:3]


def test_acdc_runs_on_its_coarser_configuration_with_every_trainer():
    """ACDC's protocol plan trains nnU-Net's 2d at 3.125 mm (a configuration the protocol adds to the plans), the
    same configuration and batch for every trainer; the planned-candidates runs inherit that one too."""
    from benchmarks.protocol.design import PLANNED, PROTOCOL_PLANS

    pplan = PROTOCOL_PLANS["acdc_2d_inplane2x"]
    assert pplan.derived_from == ("2d", 2.0) and pplan.plan.configuration == "2d_inplane2x"
    assert pplan.configuration_for("nnUNetTrainer") == pplan.configuration_for("nnUNetTrainerMSA2") \
        == "2d_inplane2x_protocol_b8"
    assert pplan.configuration_for("nnUNetTrainerMSA2" + PLANNED) == "2d_inplane2x_protocol_b8_rf"
    assert PROTOCOL_PLANS["hippocampus_2d"].derived_from is None


def test_paired_difference_on_hand_made_examples():
    # one seed each, A = B + 0.01 on every case: the difference and both interval ends are exactly 0.01
    b = np.array([[0.80, 0.70, 0.90, 0.60], [0.82, 0.71, 0.88, 0.65]])
    d = paired_difference(b[:1] + 0.01, b[:1], n_boot=2000)
    assert d.mean == pytest.approx(0.01) and d.low == pytest.approx(0.01) and d.high == pytest.approx(0.01)
    # two seeds each: seeds are drawn independently per trainer (unpaired), so B's own seed spread enters the
    # interval even though A = B + 0.01 seed by seed
    d = paired_difference(b + 0.01, b, n_boot=4000)
    assert d.mean == pytest.approx(0.01) and d.low < 0.01 < d.high
    # one seed each, per-case differences +1 on 3 cases, -1 on 1: mean 0.5; the interval is the bootstrap
    # distribution of the mean of 4 draws from {+1, +1, +1, -1}: its 2.5 % point is -0.5 (P(mean <= -0.5) = 5.1 %)
    # and its 97.5 % point 1.0 (P(mean = 1) = 31.6 %)
    d = paired_difference(np.array([[1.0, 1.0, 1.0, 0.0]]), np.array([[0.0, 0.0, 0.0, 1.0]]), n_boot=20000)
    assert d.mean == pytest.approx(0.5)
    assert d.low == pytest.approx(-0.5) and d.high == pytest.approx(1.0)
    # seed spread widens the interval: same case means, but A's two seeds disagree by ±0.05 on every case
    a = np.vstack([b[0] + 0.05, b[0] - 0.05])
    narrow = paired_difference(b[:1] + 0.0, b[:1], n_boot=4000)
    wide = paired_difference(a, b[:1], n_boot=4000)
    assert narrow.high - narrow.low == pytest.approx(0.0)
    assert wide.low < -0.04 and wide.high > 0.04
    with pytest.raises(ValueError, match="same test cases"):
        paired_difference(np.ones((1, 3)), np.ones((1, 4)))


def test_interpolation_between_budgets():
    s1, s2 = np.array([[0.5, 0.7]]), np.array([[0.7, 0.9]])
    np.testing.assert_allclose(interpolate_budgets([100, 200], [s1, s2], 150), [[0.6, 0.8]])
    np.testing.assert_allclose(interpolate_budgets([200, 100], [s2, s1], 175), [[0.65, 0.85]])
    assert interpolate_budgets([100, 200], [s1, s2], 250) is None
    np.testing.assert_allclose(interpolate_budgets([100, 200], [s1, s2], 50), s1)


def _record(seed, epoch_times, dice):
    return {"key": {"seed": seed}, "epoch_times_s": epoch_times, "training_time_s": sum(epoch_times),
            "iterations_per_epoch": 50, "load_during_training": {"mean": 1.0},
            "test_dice": {"a": {"L": dice}, "b": {"L": dice}}}


def _ratio(plan, signature, ratio, idle=True, utc="2026-12-07T03:00:00+00:00", cpu="AMD EPYC"):
    return {"plan": plan, "trainer": "X", "signature": signature, "signatures": [signature], "ratio": ratio,
            "ratio_per_round": [ratio], "iteration_s": ratio * 0.9, "baseline_iteration_s": 0.9, "idle": idle,
            "cpu_model": cpu, "measured_utc": utc, "command": "python -m benchmarks.protocol.time_ratio"}


def test_equal_time_uses_the_idle_side_by_side_ratio():
    """A row trained N iterations at an idle-measured ratio r is compared with nnU-Net at r·N iterations (linear
    between nnU-Net's budgets); the runs' own epoch times, however loaded, play no part. A row without an idle
    ratio (none, or only a loaded one) gets no equal-time difference and a hint with the command that measures it;
    one beyond nnU-Net's longest budget gets the protocol command that trains the budget it needs."""
    from benchmarks.protocol.report import Row, compare, markdown_table

    def rec(seed, sig, dice, times=(10.0,) * 20):
        return dict(_record(seed, list(times), dice), key={"seed": seed, "signature": sig})

    base = [Row("nnUNetTrainer", "nnUNetTrainer", 1000, [rec(0, "b", 0.80)]),
            Row("nnUNetTrainer", "nnUNetTrainer", 2000, [rec(0, "b", 0.90)])]
    rows = base + [Row("X", "X", 1000, [rec(0, "x", 0.85, (30.0,) * 20)]),  # slow as run: irrelevant
                   Row("Y", "Y", 1000, [rec(0, "y", 0.85)]), Row("Z", "Z", 1000, [rec(0, "z", 0.85)]),
                   Row("W", "W", 1000, [rec(0, "w", 0.85)])]
    ratios = [_ratio("p", "x", 1.0), _ratio("p", "y", 1.5), _ratio("p", "z", 1.2, idle=False),
              _ratio("p", "w", 2.5), _ratio("other plan", "z", 1.0)]
    entries = {e["label"]: e for e in compare(rows, ["a", "b"], n_boot=200, plan="p", ratios=ratios)}
    x, y, z, w = entries["X"], entries["Y"], entries["Z"], entries["W"]
    assert x["time_ratio"] == pytest.approx(1.0) and x["diff_equal_time"]["mean"] == pytest.approx(0.05)
    assert y["time_ratio"] == pytest.approx(1.5) and y["nnunet_iterations_at_equal_time"] == pytest.approx(1500)
    assert y["diff_equal_time"]["mean"] == pytest.approx(0.85 - 0.85)  # 0.80 + 0.5 × 0.10
    assert "time_ratio" not in z and not z.get("diff_equal_time")
    assert "python -m benchmarks.protocol.time_ratio --plans p --trainers Z" in z["equal_time_hint"]
    assert w["diff_equal_time"] is None and "--iterations 2500" in w["equal_time_hint"]
    for e in (x, y, z, w):
        assert e["diff_equal_iterations"]["mean"] == pytest.approx(0.05)
    table = markdown_table("p", list(entries.values()), 2)
    assert "1.50×" in table and "time_ratio --plans p --trainers Z" in table


def test_time_ratio_summary_store_and_lookup(tmp_path):
    """The ratio is the median steady epoch time (the first epoch of each run left out) over nnU-Net's, per round
    too; a new measurement replaces the older one of the same plan, signature and CPU, and lookup takes only idle
    ones of the plan, under any hash of the same options."""
    from benchmarks.protocol.time_ratio import load_ratios, ratio_for, ratio_summary, store

    summary = ratio_summary({"nnUNetTrainer": [[99.0, 10.0, 10.0], [50.0, 11.0, 11.0]],
                             "M": [[300.0, 20.0, 20.0], [300.0, 22.0, 22.0]]}, iterations_per_epoch=50)
    assert summary["nnUNetTrainer"]["ratio"] == pytest.approx(1.0)
    assert summary["M"]["ratio"] == pytest.approx(21.0 / 10.5)
    assert summary["M"]["ratio_per_round"] == pytest.approx([2.0, 2.0])
    assert summary["M"]["iteration_s"] == pytest.approx(21.0 / 50)
    path = str(tmp_path / "ratios.json")
    store([_ratio("p", "m", 2.0, utc="2026-12-07T01:00:00+00:00")], path)
    store([_ratio("p", "m", 1.8, utc="2026-12-07T02:00:00+00:00"), _ratio("p", "m", 1.1, cpu="Other CPU"),
           _ratio("q", "m", 3.0, idle=False)], path)
    entries = load_ratios(path)
    assert len(entries) == 3
    assert ratio_for(entries, "p", "m")["ratio"] in (pytest.approx(1.8), pytest.approx(1.1))
    assert ratio_for(entries, "q", "m") is None and ratio_for(entries, "p", "other") is None


def test_records_are_found_under_any_value_of_a_neutral_option(tmp_path):
    """A record keyed with another ``recompute`` (memory and time only, the same numbers) is the same run: the
    cache finds it and the report names it after today's trainer; a record of other options is not taken."""
    from benchmarks.protocol.design import RunKey, signature_hash, signature_hashes, trainer_signature, _hash
    from benchmarks.protocol.report import load_rows

    trainer = "nnUNetTrainerMSA2"
    hashes = signature_hashes(trainer)
    assert hashes[0] == signature_hash(trainer) and len(hashes) == len(set(hashes)) >= 4
    sig = trainer_signature(trainer)
    other = {**sig["msa2_options"], "recompute": "blocks" if sig["msa2_options"]["recompute"] != "blocks" else False}
    old = _hash({**sig, "msa2_options": other})
    assert old in hashes and old != hashes[0]
    changed = _hash({**sig, "msa2_options": {**sig["msa2_options"], "n_bridge": 7}})
    assert changed not in hashes
    for h in (old, changed):
        key = RunKey("hippocampus_2d", "nnUNetTrainerMSA2_renamed", 1000, 32, 0, "abc", h)
        path = Path(key.record_path(str(tmp_path)))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"key": key.as_dict(), "test_dice": {}}))
    today = RunKey("hippocampus_2d", trainer, 1000, 32, 0, "abc", hashes[0])
    found = today.same_run_paths(str(tmp_path), hashes)
    assert [Path(p).name for p in found] == [f"nnUNetTrainerMSA2_renamed_it1000_b32_seed0_abc_{old}.json"]
    labels = {r.label for r in load_rows(str(tmp_path), "hippocampus_2d")}
    assert trainer in labels and f"nnUNetTrainerMSA2_renamed@{changed}" in labels


def test_seeds_of_one_network_under_two_names_are_one_row(tmp_path):
    """Seed 0 recorded under the default's former name, seed 1 under ``nnUNetTrainerMSA2`` (the same options): one
    row of two seeds named after today's default with the former name beside it, so that the report pairs both
    seeds against nnU-Net (the 3d_fullres default had been split into two one-seed rows); a seed recorded under both
    names counts once; another budget stays its own row."""
    from benchmarks.protocol.design import RunKey, signature_hash
    from benchmarks.protocol.report import load_rows

    h = signature_hash("nnUNetTrainerMSA2")
    former = "nnUNetTrainerMSA2_inputHeLightShared"
    assert signature_hash(former) == h  # the alias the records were made under still builds the same network
    for trainer, its, seed, dice in ((former, 1000, 0, 0.8), ("nnUNetTrainerMSA2", 1000, 1, 0.9),
                                     ("nnUNetTrainerMSA2", 1000, 0, 0.1), ("nnUNetTrainerMSA2", 2000, 0, 0.7)):
        key = RunKey("hippocampus_3d_fullres", trainer, its, 2, seed, "abc", h)
        path = Path(key.record_path(str(tmp_path)))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"key": key.as_dict(), "test_dice": {"c1": {"A": dice}}}))
    rows = {(r.label, r.iterations): r for r in load_rows(str(tmp_path), "hippocampus_3d_fullres")}
    assert set(rows) == {(f"nnUNetTrainerMSA2 (= {former})", 1000), ("nnUNetTrainerMSA2", 2000)}
    merged = rows[(f"nnUNetTrainerMSA2 (= {former})", 1000)]
    assert merged.seeds == [0, 1]
    # seed 0 once: the record found first in path order ("..._inputHe..." sorts before "..._it1000...")
    assert merged.scores(["c1"])[:, 0].tolist() == [0.8, 0.9]


def _stop_when_second_epoch_starts(proc: subprocess.Popen, runs: Path, name_start: str, timeout: float = 900):
    """Kill ``proc``'s process group once a run folder ``name_start*`` logs ``Epoch 1`` (after nnU-Net saved the
    checkpoint of epoch 0): a session closed in the middle of a run."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if any(": Epoch 1" in log.read_text(errors="replace")
               for log in runs.glob(f"{name_start}*/nnUNet_results/*/*/fold_0/training_log_*.txt")):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"no run {name_start}* reached its second epoch (exit {proc.poll()}): {proc.stdout.read()[-3000:]}")


@pytest.mark.e2e
def test_protocol_end_to_end_tiny(shared_data, hippocampus, tmp_path):
    """The whole protocol through the real commands: 2 iterations (2 epochs of 1), 3 test cases, nnU-Net's default;
    then the same command with MSA2 with candidates planned from the labels added, stopped in its second epoch and run
    again: it goes on from the checkpoint with ``nnUNetv2_train --c`` and nnU-Net's run is cached and not touched;
    then the side-by-side time ratio of the planned network (``benchmarks.protocol.time_ratio``, one round), and the
    report compares both, at equal time through the measured ratio."""
    results, workspace = tmp_path / "records", tmp_path / "ws"
    ratios = tmp_path / "time_ratios.json"
    base = [sys.executable, "-m", "benchmarks.protocol", "--data", str(shared_data), "--workspace", str(workspace),
            "--results", str(results), "--iterations", "2", "--iterations-per-epoch", "1", "--max-test-cases", "3",
            "--max-train-cases", "10", "--max-validation-cases", "1", "--bootstrap", "500", "--ratios", str(ratios),
            "--n-proc-da", "0", "--n-proc-predict", "0"]  # no worker processes (each imports torch) for tiny runs
    # the protocol scores the test cases with nnUNetv2_predict; nnU-Net's end-of-training validation is not part of it
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", nnUNetMSA_validation="off")
    # the session's hippocampus, converted and preprocessed by nnU-Net's commands (the benchmark smoke test covers
    # the workspace's own conversion and planning): the protocol takes it as it is and writes its own split
    for source, sub in ((hippocampus.raw_dir, "nnUNet_raw"), (hippocampus.preprocessed_dir, "nnUNet_preprocessed")):
        shutil.copytree(source, workspace / sub / Path(source).name, symlinks=True,
                        ignore=shutil.ignore_patterns("splits_final.json", "nnUNetPlans_3d_fullres"))
    first = subprocess.run(base + ["--seeds", "0", "--trainers", "nnUNetTrainer"], cwd=REPO,
                           env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "every case is preprocessed already" in first.stdout and "[workspace] planning" not in first.stdout, \
        first.stdout[-3000:]
    assert first.stdout.count("run:") == 1 and "cached:" not in first.stdout, first.stdout[-3000:]
    records = sorted((results / "hippocampus_2d").glob("*.json"))
    assert len(records) == 1, [r.name for r in records]
    mtimes = [p.stat().st_mtime for p in records]
    third = base + ["--seeds", "0", "--trainers", "nnUNetTrainer,nnUNetTrainerMSA2+plannedRF"]
    stopped = subprocess.Popen(third, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    _stop_when_second_epoch_starts(stopped, workspace / "protocol_runs" / "hippocampus_2d",
                                   "nnUNetTrainerMSA2+plannedRF_")
    assert len(list((results / "hippocampus_2d").glob("*.json"))) == 1, "a stopped run left a record"
    second = subprocess.run(third, cwd=REPO, env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert second.stdout.count("cached:") == 1 and second.stdout.count("run:") == 1, second.stdout[-3000:]
    assert "resume: an earlier attempt stopped after 1 epoch(s)" in second.stdout, second.stdout[-3000:]
    assert " --c" in second.stdout, second.stdout[-3000:]
    assert [p.stat().st_mtime for p in records] == mtimes, "a cached run was trained or recorded again"
    planned_hint = next(r for r in json.loads((results / "hippocampus_2d_report.json").read_text())["rows"]
                        if r["trainer"] == "nnUNetTrainerMSA2+plannedRF")["equal_time_hint"]
    assert "time_ratio --plans hippocampus_2d --trainers nnUNetTrainerMSA2+plannedRF" in planned_hint, planned_hint

    timing = subprocess.run([sys.executable, "-m", "benchmarks.protocol.time_ratio", "--data", str(shared_data),
                             "--workspace", str(workspace), "--output", str(ratios), "--trainers",
                             "nnUNetTrainerMSA2+plannedRF", "--epochs", "2", "--rounds", "1",
                             "--iterations-per-epoch", "1", "--n-proc-da", "0"], cwd=REPO, env=env,
                            capture_output=True, text=True)
    assert timing.returncode == 0, timing.stdout[-3000:] + timing.stderr[-3000:]
    measured = json.loads(ratios.read_text())["entries"]
    assert [m["trainer"] for m in measured] == ["nnUNetTrainerMSA2+plannedRF"] and measured[0]["ratio"] > 0
    assert measured[0]["configuration"].endswith("_rf") and measured[0]["cpu_model"]
    assert len(measured[0]["epoch_times_s"][0]) == 2 and 0 <= measured[0]["foreign_cpu_share_max"] <= 1
    assert "| `nnUNetTrainerMSA2+plannedRF` |" in timing.stdout
    # the test suite shares the cores with other tests: the measurement is taken as idle here to check that the
    # report uses it (a real one refuses load, see time_ratio.IDLE_FOREIGN_SHARE)
    ratios.write_text(json.dumps({"entries": [dict(measured[0], idle=True)]}))
    report_only = subprocess.run(base + ["--report-only"], cwd=REPO, env=env, capture_output=True, text=True)
    assert report_only.returncode == 0, report_only.stdout[-3000:] + report_only.stderr[-3000:]

    records = sorted((results / "hippocampus_2d").glob("*.json"))
    assert len(records) == 2, [r.name for r in records]
    splits = json.loads((workspace / "nnUNet_preprocessed" / "Dataset004_Hippocampus" / "splits_final.json")
                        .read_text())[0]
    assert len(splits["train"]) == 10 and len(splits["val"]) == 1, splits
    for path in records:
        rec = json.loads(path.read_text())
        assert len(rec["test_dice"]) == 3 and rec["epochs"] == 2 and len(rec["epoch_times_s"]) == 2
        resumed = rec["key"]["trainer"] == "nnUNetTrainerMSA2+plannedRF"
        assert rec["resumed_from_epochs"] == ([1] if resumed else []), rec["resumed_from_epochs"]
        assert set(rec["test_dice"]) == set(rec["test_cases"])
        assert all(set(d) == {"Anterior", "Posterior"} for d in rec["test_dice"].values())
        assert not set(rec["test_cases"]) & set(splits["train"] + splits["val"]), "a test case was trained on"
        log = Path(rec["run_folder"]) / "train.log"
        assert f"seeded random, numpy and torch with {rec['key']['seed']}" in log.read_text()
    report = json.loads((results / "hippocampus_2d_report.json").read_text())
    planned = next(r for r in report["rows"] if r["trainer"] == "nnUNetTrainerMSA2+plannedRF")
    assert planned["label"] == "nnUNetTrainerMSA2+plannedRF" and planned["seeds"] == [0]
    assert planned["diff_equal_iterations"]["n_cases"] == 3
    assert planned["time_ratio"] == pytest.approx(measured[0]["ratio"])
    assert planned.get("diff_equal_time") or "--iterations" in planned["equal_time_hint"], planned
    # the planned run trained (and predicted with) the network of the planned candidates, as its plans say
    rec = json.loads(next(p for p in records if p.name.startswith("nnUNetTrainerMSA2+plannedRF")).read_text())
    assert rec["configuration"] == "2d_protocol_b32_rf"
    model_plans = json.loads(next(Path(rec["run_folder"]).rglob("plans.json")).read_text())
    cfg = model_plans["configurations"]["2d_protocol_b32_rf"]
    assert cfg["inherits_from"] == "2d" and cfg["batch_size"] == 32
    dilations = cfg["architecture"]["arch_kwargs"]["sacm_dilations"]
    assert len(dilations) == cfg["architecture"]["arch_kwargs"]["n_stages"] - 1
    assert all(c[0] == [1, 1] for c in dilations), "the first candidate is the local conv"
    # planned from the labels of the training pool only (10 training + 1 validation case), never the test cases'
    assert cfg["msa2_structure_extents"]["n_cases"] == 11
    assert (results / "hippocampus_2d_dice_vs_time.png").stat().st_size > 1000
    assert "Δ vs nnU-Net, equal iterations" in (results / "hippocampus_2d_report.md").read_text()
