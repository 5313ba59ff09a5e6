"""What the user just saw, from the demo's results dict: the Dice table per trainer on the held-out cases, the training
time of each and its ratio to the first trainer's (nnU-Net's default in the default run), and a few plain sentences:
what was trained, that this budget is no accuracy result, and the commands to try on one's own data. As plain text
for the terminal (``format_closing``) and as markdown for the workspace's ``results.md`` (``format_markdown``)."""
from __future__ import annotations

from typing import List, Optional, Tuple

from nnunet_msa.pipeline.demo_progress import duration, plural

RESULTS_DOC = "docs/results.md"
NEXT_COMMANDS = (
    "nnUNetv2_plan_and_preprocess -d DATASET -c 2d && nnunet-msa plan -d DATASET -c 2d",
    "nnUNetv2_train DATASET 2d FOLD && nnUNetv2_train DATASET 2d FOLD -tr nnUNetTrainerMSA2 -p nnUNetMSA2Plans",
    "nnunet-msa compare -d DATASET -c 2d -tr nnUNetTrainer nnUNetTrainerMSA2 -p nnUNetPlans nnUNetMSA2Plans",
)


def _fmt(value: Optional[float], digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def train_ratio(result: dict, trainer: str) -> Optional[float]:
    """``trainer``'s training wall time over the first trainer's."""
    runs = result["trainers"]
    reference = runs[next(iter(runs))]["train_seconds"]
    return runs[trainer]["train_seconds"] / reference if reference else None


def table_rows(result: dict) -> Tuple[List[str], List[List[str]]]:
    """Header and rows: Dice per label and mean on the held-out cases, training time, its ratio to the first
    trainer's, seconds per training iteration."""
    labels = list(result["labels"])
    header = ["trainer"] + [f"Dice {name}" for name in labels] + ["mean Dice", "training", "ratio", "s/iter"]
    rows = []
    for trainer, r in result["trainers"].items():
        ratio = train_ratio(result, trainer)
        rows.append([trainer] + [_fmt(r["dice"][name]) for name in labels] + [
            _fmt(r["mean_dice"]), duration(r["train_seconds"]), "n/a" if ratio is None else f"{ratio:.2f}x",
            _fmt(r["seconds_per_iteration"], 2)])
    return header, rows


def table_caption(result: dict) -> str:
    """What the table's numbers are."""
    first = next(iter(result["trainers"]))
    return (f"Dice on the {len(result['test_cases'])} held-out cases no training saw; training: wall time of "
            f"nnUNetv2_train; ratio: training time over {first}'s.")


def _source_text(result: dict) -> str:
    return {"synthetic": "a synthetic dataset generated on the spot", "msd": "a subset of an MSD task",
            "raw": "a subset of an nnU-Net raw dataset"}.get(result["source"], result["source"])


def closing_sentences(result: dict) -> List[str]:
    """Plain sentences: what ran, the time ratio, what the budget shows, what to run next (commands follow)."""
    b = result["budget"]
    trainers = list(result["trainers"])
    said = [f"What ran: nnU-Net's own commands planned and preprocessed {result['dataset']} ({_source_text(result)}: "
            f"{len(result['train_cases'])} training and {len(result['val_cases'])} validation cases), trained "
            f"{' and '.join(trainers)} on {result['configuration']} (batch {result['batch_size']}) for "
            f"{plural(b['epochs'], 'epoch')} x {plural(b['iterations_per_epoch'], 'iteration')} each, and "
            f"predicted {plural(len(result['test_cases']), 'held-out case')}."]
    runs = result["trainers"]
    for t in trainers[1:]:
        first, ratio = trainers[0], train_ratio(result, t)
        if ratio is not None:
            said.append(f"{t}'s training took {ratio:.2f}x as long as {first}'s ({duration(runs[t]['train_seconds'])} "
                        f"against {duration(runs[first]['train_seconds'])}; at this budget nnU-Net's start-up and "
                        f"final validation are a large part of both).")
    said.append(f"A budget this small shows that the pipeline works on this machine; its Dice values are not an "
                f"accuracy result (the protocol's results are in {RESULTS_DOC} of nnunet-msa's source).")
    said.append("Next, the same comparison on your own nnU-Net dataset at nnU-Net's full budget (DATASET: its ID; "
                "FOLD: each of 0 to 4):")
    return said


def format_table(header: List[str], rows: List[List[str]]) -> List[str]:
    """Aligned plain-text table lines."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]

    def line(cells: List[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return [line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]


def format_closing(result: dict) -> str:
    """The closing block for the terminal: table, caption, sentences, next commands."""
    header, rows = table_rows(result)
    lines = format_table(header, rows) + [table_caption(result), ""] + closing_sentences(result)
    lines += [f"  {cmd}" for cmd in NEXT_COMMANDS]
    return "\n".join(lines)


def format_markdown(result: dict) -> str:
    """``results.md``: the run, the table, the sentences and the next commands."""
    header, rows = table_rows(result)
    b = result["budget"]
    lines = [f"# nnunet-msa demo: {result['dataset']}", "",
             f"Source: {result['source']}. Configuration {result['configuration']} (batch {result['batch_size']}), "
             f"{plural(b['epochs'], 'epoch')} x {plural(b['iterations_per_epoch'], 'iteration')} per trainer, "
             f"{len(result['train_cases'])} training / {len(result['val_cases'])} validation cases; Dice on "
             f"{len(result['test_cases'])} held-out cases (test-time mirroring: {result['tta']}).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", table_caption(result), ""]
    total = result["timings"].get("total")
    if total is not None:
        lines += [f"Total wall time: {duration(total)}.", ""]
    lines += [" ".join(closing_sentences(result)), "", "```bash"]
    lines += list(NEXT_COMMANDS) + ["```"]
    return "\n".join(lines) + "\n"
