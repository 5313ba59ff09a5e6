"""``nnunet-msa trainers``: every trainer nnU-Net finds through ``nnunet-msa trainers-path``, one line each (name,
what it is, its preset, what a step costs against nnU-Net's default), grouped: the default and its product forms,
the ablations, the other papers' architectures, the epoch and budget variants, then the accuracy protocol's
experiments (marked ``[experiment]``). Needs no nnU-Net folders or data."""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import List

EXPERIMENT_MARK = "[experiment]"


def add_trainers_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every trainer, the experiments too (the default)")
    which.add_argument("--product", action="store_true", help="leave out the accuracy protocol's experiments")
    parser.add_argument("--json", action="store_true", help="a JSON list of {name, group, what, preset, cost, "
                                                            "experiment} instead of the table")


def format_listing(entries: list) -> List[str]:
    """The text lines of ``entries`` (``trainer_catalog``): a header per group, then one line per trainer."""
    from nnunet_msa.training.trainer_catalog import GROUPS

    headers = dict(GROUPS)
    lines: List[str] = []
    group, width = None, 0
    for e in entries:
        if e.group != group:
            group = e.group
            width = max(len(f.name) for f in entries if f.group == group)
            lines += ([""] if lines else []) + [f"== {headers[group]} =="]
        mark = f"{EXPERIMENT_MARK} " if e.experiment else ""
        lines.append(f"{e.name:<{width}}  {mark}{e.what} [preset {e.preset or '-'}; cost {e.cost}]")
    return lines


def run_trainers(args: argparse.Namespace) -> int:
    # nnU-Net's import may print about unset folders; keep stdout for the listing
    with contextlib.redirect_stdout(sys.stderr):
        from nnunet_msa.training.trainer_catalog import trainer_catalog

        entries = trainer_catalog(product_only=args.product)
    if args.json:
        print(json.dumps([e.as_dict() for e in entries], indent=1))
    else:
        print("\n".join(format_listing(entries)))
        print(f"\n{len(entries)} trainers; cost: step time and memory against nnU-Net's default "
              f"(benchmarks/COST.md). Train one with nnUNetv2_train DATASET CONFIG FOLD -tr NAME.")
    return 0
