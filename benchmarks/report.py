"""The benchmark's outputs: a markdown report (every figure and ratio) and a JSON of the raw numbers."""
from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Optional

from benchmarks.networks import BASELINE, LABELS, MSA2

# (key in a plan result's "ratios", column title) in report order
RATIO_COLUMNS = [
    ("step_time", "train step time"),
    ("step_time_compiled", "train step time, torch.compile"),
    ("flops", "FLOPs/step"),
    ("parameters", "parameters"),
    ("peak_memory", "step peak memory"),
    ("feature_map_estimate", "planner estimate"),
    ("prediction_time", "prediction time"),
    ("training_time", "budget training time (epochs)"),
    ("training_wall_time", "budget training wall time"),
    ("foreground_dice", "foreground Dice"),
]
COST_FLOOR = 1.5


def _num(v: Optional[float], fmt: str = "{:.3g}") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return fmt.format(v)


def _ratio(v: Optional[float]) -> str:
    return "–" if v is None else f"{v:.2f}×"


def _seconds(s: Optional[Dict[str, Any]]) -> str:
    if not s or s.get("median") is None:
        return "–"
    if s["n"] > 1:
        return f"{s['median']:.3g} s [{s['min']:.3g}–{s['max']:.3g}]"
    return f"{s['median']:.3g} s"


def _mib(s: Optional[Dict[str, Any]]) -> str:
    if not s or s.get("median") is None:
        return "–"
    m = s["median"] / 2 ** 20
    if s["n"] > 1:
        return f"{m:.0f} MiB [{s['min'] / 2 ** 20:.0f}–{s['max'] / 2 ** 20:.0f}]"
    return f"{m:.0f} MiB"


def _spread(p: Optional[Dict[str, Any]]) -> str:
    if not p or p.get("pair_min") is None or p.get("pairs", 0) < 2:
        return ""
    return f"pairs {p['pair_min']:.2f}–{p['pair_max']:.2f}"


def _get(d: Dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _ratio_value(entry: Any) -> Optional[float]:
    return entry.get("ratio") if isinstance(entry, dict) else entry


def plan_rows(r: Dict[str, Any]) -> List[List[str]]:
    """Rows (metric, nnU-Net, MSA2, ratio, spread/notes) of one plan."""
    ratios = r.get("ratios", {})
    rows: List[List[str]] = []

    def add(metric: str, a: str, b: str, key: str, note: str = "") -> None:
        entry = ratios.get(key)
        rows.append([metric, a, b, _ratio(_ratio_value(entry)), note or _spread(entry if isinstance(entry, dict)
                                                                                  else None)])

    p = r.get("parameters", {})
    add("parameters", _num(_get(p, BASELINE), "{:,}"), _num(_get(p, MSA2), "{:,}"), "parameters")
    st = r.get("step_time_s", {})
    add(f"training step time (batch {r.get('batch_size')})", _seconds(st.get(BASELINE)), _seconds(st.get(MSA2)),
        "step_time")
    sc = r.get("step_time_compiled_s", {})
    if sc:
        add("training step time under torch.compile (inductor)", _seconds(sc.get(BASELINE)), _seconds(sc.get(MSA2)),
            "step_time_compiled")
    fl = r.get("flops_per_step", {})
    add("FLOPs per step (fwd+bwd, GFLOP)", _num(_get(fl, BASELINE, "total") and fl[BASELINE]["total"] / 1e9,
                                                "{:.1f}"),
        _num(_get(fl, MSA2, "total") and fl[MSA2]["total"] / 1e9, "{:.1f}"), "flops",
        "convs+matmuls only")
    mv = r.get("forward_macs_per_voxel", {})
    if mv:
        add("forward multiply-adds per voxel", _num(mv.get(BASELINE), "{:,.0f}"), _num(mv.get(MSA2), "{:,.0f}"),
            "flops", "same ratio as FLOPs")
    mem = r.get("memory", {})
    if mem:
        add("peak memory of one step (above pre-step)", _mib(_get(mem, BASELINE, "summary")),
            _mib(_get(mem, MSA2, "summary")), "peak_memory")
    pl = r.get("planner", {})
    if pl:
        add("planner estimate (feature-map elements)", _num(_get(pl, BASELINE, "feature_map_elements"), "{:,}"),
            _num(_get(pl, MSA2, "feature_map_elements"), "{:,}"), "feature_map_estimate")
        rows.append(["planner batch at planned patch (8 GB rule)",
                     f"{_get(pl, BASELINE, 'planner_batch_uncapped')}" +
                     ("" if _get(pl, BASELINE, "planner_keeps_patch") else " (patch would shrink)"),
                     f"{_get(pl, MSA2, 'planner_batch_uncapped')}" +
                     ("" if _get(pl, MSA2, "planner_keeps_patch") else " (patch would shrink)"), "", ""])
    pr = r.get("prediction", {})
    if pr:
        work = pr.get("work", {})
        cropped = "" if pr.get("shape") == pr.get("case_shape") else f", cropped from {pr.get('case_shape')} (quick)"
        add(f"prediction of case {pr.get('case')} (shape {pr.get('shape')}{cropped})", _seconds(_get(pr, "time_s", BASELINE)),
            _seconds(_get(pr, "time_s", MSA2)), "prediction_time",
            f"{work.get('tiles')} tiles × {work.get('mirror_evaluations_per_tile')} mirrorings; "
            + _spread(ratios.get("prediction_time")))
    acc = r.get("accuracy")
    if acc and acc.get("results"):
        res = acc["results"]
        add("foreground Dice (nnU-Net validation, fold 0)", _num(_get(res, BASELINE, "foreground_dice"), "{:.4f}"),
            _num(_get(res, MSA2, "foreground_dice"), "{:.4f}"), "foreground_dice",
            f"{len(acc.get('val_cases', []))} val cases")
        add("budget training wall time", _num(_get(res, BASELINE, "wall_time_s"), "{:.0f} s"),
            _num(_get(res, MSA2, "wall_time_s"), "{:.0f} s"), "training_wall_time",
            "incl. start-up and final validation")
        add("budget training time (epochs only)", _num(_get(res, BASELINE, "training_time_s"), "{:.0f} s"),
            _num(_get(res, MSA2, "training_time_s"), "{:.0f} s"), "training_time")
    return rows


def _table(header: List[str], rows: List[List[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def ratio_summary_table(results: List[Dict[str, Any]]) -> str:
    """Plans × ratios, the headline table."""
    header = ["plan (batch)"] + [title for _, title in RATIO_COLUMNS]
    rows = []
    for r in results:
        rows.append([f"{r['plan']} ({r.get('batch_size')})"] +
                    [_ratio(_ratio_value(r.get("ratios", {}).get(k))) for k, _ in RATIO_COLUMNS])
    return _table(header, rows)


def markdown(run: Dict[str, Any]) -> str:
    """The full report."""
    m = run["machine"]
    s = run["settings"]
    out = [
        "# MSA2 vs nnU-Net: cost and accuracy on real nnU-Net plans",
        "",
        f"- Machine: {m['cpu_model']}, {m['usable_cores']} usable of {m['logical_cores']} logical cores"
        + (f", GPU {m['gpu']}" if m.get("gpu") else "") + f"; load average at start {m.get('load_average_at_start')}",
        f"- Software: Python {m['python']}, torch {m['torch']}, nnunetv2 {m['nnunetv2']}, "
        f"dynamic-network-architectures {m['dynamic_network_architectures']}, nnunet-msa {m['nnunet_msa']}",
        f"- Device {m['device']}; torch threads {m['torch_threads']} (set with --threads; memory probes use the "
        f"same; nnUNetv2_train on CPU sets its own: all cores)",
        f"- Trainers: nnU-Net = `{s['baseline_trainer']}`, MSA2 = `{s['msa2_trainer']}`"
        + (f"; accuracy: `{s['baseline_budget_trainer']}` vs `{s['msa2_budget_trainer']}`"
           if not s.get("skip_accuracy") else ""),
        f"- Mode: {'quick (smoke run, not a measurement)' if s['quick'] else 'full'}; step-time warm-up "
        f"{s['warmup']}, repeats {s['repeats']} (interleaved); memory repeats {s['memory_repeats']}; prediction "
        f"repeats {s['prediction_repeats']}",
        f"- Started {run['started']}, took {run.get('elapsed_s', 0):.0f} s. Command: `{run['command']}`",
        "",
        "## Ratios MSA2 / nnU-Net (medians; cost floor: 1.5×)",
        "",
        ratio_summary_table(run["results"]),
        "",
    ]
    for r in run["results"]:
        out += [f"## {r['plan']}", "",
                f"Patch {r.get('patch_size')}, planned batch {r.get('planned_batch_size')}, batch used "
                f"{r.get('batch_size')} ({r.get('batch_note')}).", ""]
        out.append(_table(["metric", LABELS[BASELINE], LABELS[MSA2], "MSA2/nnU-Net", "spread / notes"],
                          plan_rows(r)))
        acc = r.get("accuracy")
        if acc and acc.get("results"):
            b = acc["budget"]
            out += ["", f"Accuracy budget: {b['epochs']} epochs × {b['iterations']} iterations × batch "
                        f"{b['batch_size']} ({acc['samples_seen']} samples), {len(acc['train_cases'])} training / "
                        f"{len(acc['val_cases'])} validation cases, configuration `{acc['configuration']}`.", ""]
            rows = []
            for key, res in acc["results"].items():
                per_class = ", ".join(f"{k} {v:.3f}" for k, v in res["dice_per_class"].items())
                rows.append([LABELS.get(key, key), f"{res['foreground_dice']:.4f}", per_class,
                             f"{res['wall_time_s']:.0f} s", f"{res['training_time_s']:.0f} s"])
            out.append(_table(["network", "foreground Dice", "Dice per class", "wall time", "epochs time"], rows))
        if r.get("errors"):
            out += ["", "**Errors**", ""]
            for what, tb in r["errors"].items():
                out += [f"- {what}:", "", "```", tb.strip(), "```"]
        out.append("")
    if run.get("real_loop"):
        from benchmarks.real_loop import markdown as real_loop_markdown

        out += ["## The real loop", "", real_loop_markdown(run["real_loop"]), ""]
    out += ["## Method", ""] + [f"- {line}" for line in run["method_notes"]] + [""]
    return "\n".join(out)


def write_outputs(run: Dict[str, Any], md_path: str, json_path: str) -> str:
    """Write the markdown and JSON; return the markdown."""
    text = markdown(run)
    with open(md_path, "w") as f:
        f.write(text)
    with open(json_path, "w") as f:
        json.dump(run, f, indent=2, default=str)
    return text
