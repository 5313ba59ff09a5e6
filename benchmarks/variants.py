"""``python -m benchmarks.variants``: where MSA2's cost goes, option by option, against nnU-Net's default network.

For one plan, every variant (a dict of ``MSA2UNet`` options on top of nothing, i.e. of the spec's defaults, or the
name of a trainer) is built as ``nnUNetTrainerMSA2`` builds it and measured side by side with nnU-Net's
``nnUNetTrainer`` in the same process: training-step time (interleaved rounds, median), FLOPs of one step (the
groups-corrected ``FlopCounterMode``), parameters, nnU-Net's planner estimate, and peak memory of one step in a fresh
subprocess (peak RSS minus RSS before the step, as ``benchmarks.memory_probe``). ``--profile`` adds the top operators
of one step per variant (``torch.profiler``). Prints a markdown table of MSA2/nnU-Net ratios.

Examples::

    python -m benchmarks.variants --plan hippocampus_2d --batch-size 8
    python -m benchmarks.variants --plan hippocampus_3d_fullres --batch-size 2 \\
        --variant 'full={}' --variant 'no_full_res={"bridge_stages": -1, "masag_stages": -1, "sacm_stages": -1}'
    python -m benchmarks.variants --plan acdc_2d --batch-size 4 --variant default=nnUNetTrainerMSA2 --profile

Without ``--variant`` it measures ``DEFAULT_VARIANTS`` (the exploration behind the default of nnUNetTrainerMSA2).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Union

import torch

from benchmarks.catalog import PLANS
from benchmarks.memory_probe import MALLOC_ENV, current_rss_bytes, peak_rss_bytes, reset_peak_rss
from benchmarks.step_cost import counted_training_step, make_step_setup, training_step
from benchmarks.workspace import Workspace, load_plan

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULT_PREFIX = "VARIANT_MEMORY "
BASELINE = "nnUNetTrainer"

_NO_FULL_RES = {"bridge_stages": -1, "masag_stages": -1, "sacm_stages": -1}
DEFAULT_VARIANTS: Dict[str, Union[str, Dict[str, Any]]] = {
    "full (spec-literal)": {},
    "full, recompute": {"recompute": True},
    "separable": {"sacm_realization": "separable"},
    "no full-res": dict(_NO_FULL_RES),
    "separable, no full-res": {"sacm_realization": "separable", **_NO_FULL_RES},
    "separable, 1 bridge, no full-res": {"sacm_realization": "separable", "n_bridge": 1, **_NO_FULL_RES},
    "default (nnUNetTrainerMSA2)": "nnUNetTrainerMSA2",
    "MASAG only": {"use_bridge": False, "use_sacm": False},
    "bridge only": {"use_masag": False, "use_sacm": False},
    "SACM only": {"use_bridge": False, "use_masag": False},
}


def trainer_for(spec: Union[None, str, Dict[str, Any]]):
    """nnU-Net's trainer (None), a trainer class by name (str), or nnUNetTrainerMSA2 with these options (dict)."""
    from benchmarks.networks import find_trainer_class

    if spec is None:
        return find_trainer_class(BASELINE)
    if isinstance(spec, str):
        return find_trainer_class(spec)
    from nnunet_msa.training import nnUNetTrainerMSA2

    return type("nnUNetTrainerMSA2_variant", (nnUNetTrainerMSA2,), {"msa2_options": dict(spec)})


def _context(workspace: str, data: str, plan: str):
    ws = Workspace(workspace, data)
    ws.apply_to_process()
    return load_plan(ws, PLANS[plan])


def step_memory_mib(workspace: str, data: str, plan: str, spec, batch_size: int, threads: int) -> float:
    """In this process: one warm-up step, then peak RSS of one step minus RSS before it, MiB."""
    torch.set_num_threads(threads)
    setup = make_step_setup(trainer_for(spec), _context(workspace, data, plan), batch_size)
    training_step(setup)
    setup.optimizer.zero_grad(set_to_none=True)
    gc.collect()
    before = current_rss_bytes()
    if not reset_peak_rss():
        raise RuntimeError("cannot reset the peak-RSS mark (/proc/self/clear_refs); run with --skip-memory")
    training_step(setup)
    return (peak_rss_bytes() - before) / 2 ** 20


def memory_in_subprocess(args: argparse.Namespace, spec) -> float:
    env = dict(os.environ)
    env.update(MALLOC_ENV)
    env["PYTHONPATH"] = os.pathsep.join([REPO] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    cmd = [sys.executable, "-m", "benchmarks.variants", "--memory-probe", json.dumps(spec), "--plan", args.plan,
           "--batch-size", str(args.batch_size), "--workspace", args.workspace, "--data", args.data,
           "--threads", str(args.threads)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return float(line[len(RESULT_PREFIX):])
    raise RuntimeError(f"memory probe failed (exit {proc.returncode}):\n" + "\n".join(
        (proc.stdout + proc.stderr).splitlines()[-20:]))


def _profile(setup, rows: int) -> str:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        training_step(setup)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def measure(args: argparse.Namespace, variants: Dict[str, Any], log=print) -> List[Dict[str, Any]]:
    torch.set_num_threads(args.threads)
    ctx = _context(args.workspace, args.data, args.plan)
    specs: Dict[str, Any] = {"nnU-Net (nnUNetTrainer)": None, **variants}
    setups = {name: make_step_setup(trainer_for(spec), ctx, args.batch_size) for name, spec in specs.items()}
    rows = {name: {"variant": name, "options": spec} for name, spec in specs.items()}
    for name, s in setups.items():
        rows[name]["params"] = sum(p.numel() for p in s.network.parameters())
        rows[name]["estimate"] = int(s.network.compute_conv_feature_map_size(ctx.patch_size))
        rows[name]["flops"] = counted_training_step(s)["total"]  # also the warm-up step
        if args.profile:
            log(f"\n### {name}\n```\n{_profile(s, args.profile_rows)}```")
    times: Dict[str, List[float]] = {n: [] for n in setups}
    for r in range(args.repeats):
        for name, s in setups.items():
            t0 = time.perf_counter()
            training_step(s)
            times[name].append(time.perf_counter() - t0)
        log(f"  round {r + 1}/{args.repeats}: " + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in setups))
    for name in setups:
        rows[name]["step_s"] = statistics.median(times[name])
    del setups
    gc.collect()
    if not args.skip_memory:
        for name, spec in specs.items():
            rows[name]["memory_mib"] = memory_in_subprocess(args, spec)
            log(f"  memory {name}: {rows[name]['memory_mib']:.0f} MiB")
    return list(rows.values())


def table(rows: List[Dict[str, Any]], plan: str, batch_size: int) -> str:
    base = rows[0]

    def r(key: str, row: Dict[str, Any]) -> str:
        if row.get(key) is None or not base.get(key):
            return "–"
        return f"{row[key] / base[key]:.2f}×"

    lines = [f"plan {plan}, batch {batch_size}; nnU-Net: step {base['step_s']:.3f} s, "
             f"{base['flops'] / 1e9:.1f} GFLOP, {base['params']:,} params"
             + (f", {base['memory_mib']:.0f} MiB" if base.get("memory_mib") is not None else ""),
             "", "| variant | step time | FLOPs | peak memory | planner estimate | params |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in rows[1:]:
        lines.append(f"| {row['variant']} | {r('step_s', row)} | {r('flops', row)} | {r('memory_mib', row)} | "
                     f"{r('estimate', row)} | {r('params', row)} |")
    return "\n".join(lines)


def _variant_arg(text: str):
    name, _, value = text.partition("=")
    if not name or not value:
        raise argparse.ArgumentTypeError("give NAME=JSON-options or NAME=TrainerClassName")
    value = value.strip()
    return name, (json.loads(value) if value.startswith("{") else value)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.variants", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plan", default="hippocampus_2d", choices=sorted(PLANS))
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--variant", action="append", type=_variant_arg, default=None,
                   help="NAME=JSON options of MSA2UNet (on the spec's defaults) or NAME=TrainerClass; repeatable")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--profile", action="store_true", help="print the top operators of one step per variant")
    p.add_argument("--profile-rows", type=int, default=15)
    p.add_argument("--threads", type=int, default=max(1, len(os.sched_getaffinity(0))))
    p.add_argument("--workspace", default=os.path.join(HERE, "out", "workspace"),
                   help="a workspace prepared by benchmarks.run (default: %(default)s)")
    p.add_argument("--data", default=os.environ.get("NNUNET_MSA_SHARED_DATA",
                                                   os.path.join(os.path.dirname(REPO), "shared", "data")))
    p.add_argument("--out", default=None, help="also write the table to this markdown file")
    p.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.memory_probe is not None:
        mib = step_memory_mib(args.workspace, args.data, args.plan, json.loads(args.memory_probe), args.batch_size,
                              args.threads)
        print(RESULT_PREFIX + repr(mib), flush=True)
        return 0
    variants = dict(args.variant) if args.variant else dict(DEFAULT_VARIANTS)
    rows = measure(args, variants)
    text = table(rows, args.plan, args.batch_size)
    print("\n" + text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
