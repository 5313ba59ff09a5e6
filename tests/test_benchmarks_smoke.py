"""Smoke test of the benchmark: ``python -m benchmarks.run --quick`` on hippocampus 2d (real plans made by nnU-Net's
commands in a temporary workspace), without the accuracy part; checks the outputs exist and the ratios are positive
finite numbers."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("NNUNET_MSA_SHARED_DATA", os.path.join(os.path.dirname(REPO), "shared", "data"))
COST_RATIOS = ("step_time", "flops", "parameters", "peak_memory", "feature_map_estimate", "prediction_time")


def _ratio(entry):
    return entry["ratio"] if isinstance(entry, dict) else entry


@pytest.mark.e2e
@pytest.mark.skipif(not os.path.isfile(os.path.join(DATA, "Task04_Hippocampus", "dataset.json")),
                    reason="needs ../shared/data/Task04_Hippocampus")
def test_quick_benchmark_hippocampus_2d(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "benchmarks.run", "--quick", "--plans", "hippocampus_2d", "--skip-accuracy",
           "--repeats", "1", "--warmup", "1", "--memory-repeats", "1", "--prediction-repeats", "1",
           "--out", str(out), "--workspace", str(tmp_path / "workspace"), "--data", DATA]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    for name in ("results.md", "results.json", "results.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    run = json.loads((out / "results.json").read_text())
    assert run["machine"]["torch_threads"] >= 1 and run["machine"]["torch"]
    (result,) = run["results"]
    assert not result.get("errors"), result.get("errors")
    for key in COST_RATIOS:
        value = _ratio(result["ratios"][key])
        assert isinstance(value, float) and math.isfinite(value) and value > 0, (key, value)
    md = (out / "results.md").read_text()
    assert "hippocampus_2d" in md and "MSA2 / nnU-Net" in md
    assert "| hippocampus_2d" in proc.stdout  # the table is printed at the end

    # benchmarks.variants on the same workspace: option variants against nnU-Net, memory probes included
    cmd = [sys.executable, "-m", "benchmarks.variants", "--plan", "hippocampus_2d", "--batch-size", "2",
           "--repeats", "1", "--workspace", str(tmp_path / "workspace"), "--data", DATA,
           "--variant", "full={}", "--variant", "default=nnUNetTrainerMSA2", "--out", str(out / "variants.md")]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [line for line in (out / "variants.md").read_text().splitlines() if line.startswith("| full")
            or line.startswith("| default")]
    assert len(rows) == 2, rows
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")[1:]]
        values = [float(c.rstrip("×")) for c in cells]
        assert len(values) == 5 and all(math.isfinite(v) and v > 0 for v in values), row
    full, default = ([float(c.strip().rstrip("×")) for c in r.strip("|").split("|")[1:]] for r in rows)
    assert default[1] < full[1], "the default must need fewer FLOPs than the spec-literal network"

    # benchmarks.compare on the same workspace: one architecture trainer through the real nnUNetv2_train, its row with
    # Dice, parameters and FLOPs, and the plot
    cmp_out = out / "compare"
    cmd = [sys.executable, "-m", "benchmarks.compare", "--trainers", "nnUNetTrainerSE", "--epochs", "1",
           "--iterations", "1", "--batch-size", "2", "--train-cases", "4", "--val-cases", "2",
           "--workspace", str(tmp_path / "workspace"), "--data", DATA, "--out", str(cmp_out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (cmp_out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = json.loads((cmp_out / "ablation.json").read_text())["results"]["nnUNetTrainerSE"]
    assert 0.0 <= result["foreground_dice"] <= 1.0 and result["params_m"] > 0 and result["forward_gflops"] > 0
    assert "| `nnUNetTrainerSE` |" in (cmp_out / "ablation.md").read_text()


def test_comparison_trainer_lists():
    sys.path.insert(0, REPO)
    from benchmarks.ablation import PRESETS, budget_trainer, trainer_list

    names = trainer_list("architectures,nnUNetTrainerMSA2_noSACM,nnUNetTrainer")
    assert names == list(PRESETS["architectures"]) + ["nnUNetTrainerMSA2_noSACM"]
    for name in names + list(PRESETS["ablations"]):
        assert budget_trainer(name) == f"{name}_budget"
    with pytest.raises(ValueError, match="no budget trainer"):
        budget_trainer("nnUNetTrainerUNETR")
