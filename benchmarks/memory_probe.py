"""Peak memory of one training step, each measurement in a fresh subprocess.

CPU: the subprocess builds the network, loss, optimizer and batch, runs one warm-up step (optimizer state and
lazy library initialization exist from then on), drops the gradients, reads its resident memory (``/proc/self/statm``),
resets the kernel's peak-RSS mark (``echo 5 > /proc/self/clear_refs``), runs one step and reports
peak RSS (``VmHWM``) minus the RSS just before the step. Subtracting the same process's resident memory before
the step keeps the constant baseline (interpreter, libraries, weights, the batch) out, which would otherwise squeeze
ratios toward 1. glibc's malloc is told to serve blocks of 64 KiB and more with mmap (``MALLOC_MMAP_THRESHOLD_``) so
freed tensors leave the resident set and the peak reflects live memory. Where the peak mark cannot be reset, the
warm-up is skipped and ``ru_maxrss`` after the first step is used instead (the JSON says which method ran).
CUDA: ``torch.cuda.max_memory_allocated`` during the step minus ``memory_allocated`` before it.

Run as ``python -m benchmarks.memory_probe --workspace W --data D --plan P --trainer T --batch-size N``.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import re
import resource
import subprocess
import sys
from typing import Dict, List, Optional

RESULT_PREFIX = "MEMORY_PROBE_RESULT "
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "131072"}


def current_rss_bytes() -> int:
    """Resident set size now, from /proc/self/statm (pages)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> Optional[int]:
    """VmHWM (peak resident set since start or the last reset) from /proc/self/status, None if unavailable."""
    try:
        with open("/proc/self/status") as f:
            m = re.search(r"VmHWM:\s+(\d+)\s+kB", f.read())
        return int(m.group(1)) * 1024 if m else None
    except OSError:
        return None


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); True if it worked."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    peak = peak_rss_bytes()
    return peak is not None and peak <= current_rss_bytes() * 1.05 + (1 << 20)


def _probe(args: argparse.Namespace) -> Dict[str, object]:
    import torch

    from benchmarks.catalog import PLANS
    from benchmarks.networks import find_trainer_class
    from benchmarks.step_cost import make_step_setup, training_step
    from benchmarks.workspace import Workspace, load_plan

    torch.set_num_threads(args.threads)
    ws = Workspace(args.workspace, args.data)
    ws.apply_to_process()
    ctx = load_plan(ws, PLANS[args.plan])
    setup = make_step_setup(find_trainer_class(args.trainer), ctx, args.batch_size, args.device)
    if args.device.startswith("cuda"):
        training_step(setup)
        setup.optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        training_step(setup)
        peak = torch.cuda.max_memory_allocated()
        return {"step_bytes": peak - before, "before_bytes": before, "peak_bytes": peak,
                "method": "cuda max_memory_allocated - memory_allocated before, after 1 warm-up step"}
    can_reset = reset_peak_rss()
    if can_reset:
        training_step(setup)
        setup.optimizer.zero_grad(set_to_none=True)
        gc.collect()
        before = current_rss_bytes()
        reset_peak_rss()
        training_step(setup)
        peak = peak_rss_bytes()
        method = "VmHWM (reset before the step) - RSS before, after 1 warm-up step"
    else:
        gc.collect()
        before = current_rss_bytes()
        training_step(setup)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        method = "ru_maxrss - RSS before, first step (peak mark not resettable)"
    return {"step_bytes": int(peak - before), "before_bytes": int(before), "peak_bytes": int(peak),
            "method": method}


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workspace", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--plan", required=True)
    p.add_argument("--trainer", required=True)
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    print(RESULT_PREFIX + json.dumps(_probe(args)), flush=True)
    return 0


def measure_in_subprocess(workspace: str, data: str, plan: str, trainer: str, batch_size: int, threads: int,
                          device: str, timeout: float = 3600) -> Dict[str, object]:
    """Run the probe in a fresh interpreter and return its result dict."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env.update(MALLOC_ENV)
    env["PYTHONPATH"] = os.pathsep.join([repo] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    cmd = [sys.executable, "-m", "benchmarks.memory_probe", "--workspace", workspace, "--data", data, "--plan", plan,
           "--trainer", trainer, "--batch-size", str(batch_size), "--threads", str(threads), "--device", device]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=repo)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
    raise RuntimeError(f"memory probe failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")


def measure_interleaved(workspace: str, data: str, plan: str, trainers: Dict[str, str], batch_size: int,
                        threads: int, device: str, repeats: int, log=print) -> Dict[str, List[dict]]:
    """``repeats`` rounds of fresh-process probes, A, B, A, B, ...; results per network key."""
    out: Dict[str, List[dict]] = {k: [] for k in trainers}
    for r in range(repeats):
        for key, trainer in trainers.items():
            res = measure_in_subprocess(workspace, data, plan, trainer, batch_size, threads, device)
            out[key].append(res)
            log(f"    memory {key} {r + 1}/{repeats}: {res['step_bytes'] / 2 ** 20:.0f} MiB above "
                f"{res['before_bytes'] / 2 ** 20:.0f} MiB before the step")
    return out


if __name__ == "__main__":
    sys.exit(main())
