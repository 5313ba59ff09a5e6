"""``nnunet-msa compare``: does trainer B help on my data? The paired difference of two trainers' Dice per case from
nnU-Net's own cross-validation (every fold's ``validation/`` segmentations, against nnU-Net's references
``nnUNet_preprocessed/DATASET/gt_segmentations``), or from two folders of predictions on the user's own test cases,
with a bootstrap interval, per label or region, the cases B wins, the cost from the training logs, a verdict, a
table, a JSON file and a plot.

    nnunet-msa compare -d 4 -c 3d_fullres -tr nnUNetTrainer nnUNetTrainerMSA2
    nnunet-msa compare -d 4 -c 2d -tr nnUNetTrainer nnUNetTrainerMSA2 -f 0 1 --json cmp.json --plot cmp.png
    nnunet-msa compare -d 4 --test-predictions PRED_A PRED_B --labels LABELS_DIR -tr nnUNet MSA2
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Dict, List, Optional, Tuple

from nnunet_msa.analysis.case_scores import (CaseScores, CompareError, LabelDefinition, ModelFolder,
                                              files_by_case, find_model_folder, label_definition, score_cases)


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", required=True, help="dataset name or ID")
    parser.add_argument("-c", default=None, help="configuration (cross-validation mode)")
    parser.add_argument("-tr", nargs=2, metavar=("TRAINER_A", "TRAINER_B"), default=None,
                        help="the two trainers, A the reference (e.g. nnUNetTrainer) and B the candidate; with "
                             "--test-predictions, the names to show")
    parser.add_argument("-p", nargs="+", default=["nnUNetPlans"], metavar="PLANS",
                        help="plans identifier of both trainers, or of A then B (default nnUNetPlans)")
    parser.add_argument("-f", nargs="+", type=int, default=None,
                        help="folds (default: every fold both trainers have validated)")
    parser.add_argument("--test-predictions", nargs=2, metavar=("DIR_A", "DIR_B"), default=None,
                        help="held-out mode: two folders of nnUNetv2_predict output on the same cases")
    parser.add_argument("--labels", default=None, help="held-out mode: the folder of the reference segmentations")
    parser.add_argument("--json", default=None, help="write the whole result to this JSON file")
    parser.add_argument("--plot", default=None, help="write the per-case differences to this PNG")
    parser.add_argument("--bootstrap", type=int, default=10000, help="bootstrap replicates (default %(default)s)")


def _dataset_name(dataset: str) -> str:
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    try:
        return maybe_convert_to_dataset_name(dataset)
    except RuntimeError as e:
        raise CompareError(f"dataset {dataset!r}: {e}") from None


def _env_folder(var: str) -> str:
    value = os.environ.get(var)
    if not value or not os.path.isdir(value):
        raise CompareError(f"{var} is {'not set' if not value else f'{value!r}, which does not exist'}; compare reads "
                           f"nnU-Net's folders. Fix: export {var}=/path/to/{var}")
    return value


def _missing_cases(a: Dict[str, str], b: Dict[str, str], name_a: str, name_b: str, where: str) -> None:
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
        parts = [f"{len(only_a)} only in {name_a} ({', '.join(only_a[:5])}{' ...' if len(only_a) > 5 else ''})"
                 if only_a else "", f"{len(only_b)} only in {name_b} ({', '.join(only_b[:5])}"
                                    f"{' ...' if len(only_b) > 5 else ''})" if only_b else ""]
        raise CompareError(f"{where}: the two trainers did not predict the same cases: "
                           f"{'; '.join(p for p in parts if p)}. Compare the same split (splits_final.json) or "
                           f"the same test cases.")


def _same_definition(da: LabelDefinition, db: LabelDefinition, name_a: str, name_b: str) -> None:
    if da.signature() != db.signature():
        raise CompareError(f"the two model folders define different labels or regions: {name_a} "
                           f"{da.keys} (ignore {da.ignore_label}), {name_b} {db.keys} (ignore {db.ignore_label}). "
                           f"Compare models of the same dataset.json.")


def _folds_of(folder: ModelFolder) -> List[int]:
    return sorted(int(d.split("_")[-1]) for d in os.listdir(folder.path)
                  if d.startswith("fold_") and d.split("_")[-1].isdigit()
                  and os.path.isdir(os.path.join(folder.path, d, "validation")))


def cross_validation(args: argparse.Namespace) -> Tuple[CaseScores, CaseScores, LabelDefinition, List[str], dict]:
    """Both trainers' validation Dice per case over the selected folds, the block (fold) of each case, the cost."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_msa.analysis.compare_report import cost_summary

    if args.c is None or args.tr is None:
        raise CompareError("cross-validation mode needs -c CONFIGURATION and -tr TRAINER_A TRAINER_B "
                           "(or --test-predictions DIR_A DIR_B --labels DIR for predictions on test cases)")
    dataset = _dataset_name(args.d)
    results = _env_folder("nnUNet_results")
    plans_a, plans_b = (args.p + args.p)[:2] if len(args.p) == 1 else args.p[:2]
    fa = find_model_folder(results, dataset, args.tr[0], plans_a, args.c)
    fb = find_model_folder(results, dataset, args.tr[1], plans_b, args.c)
    da, db = label_definition(fa.dataset_json), label_definition(fb.dataset_json)
    _same_definition(da, db, fa.trainer, fb.trainer)
    refs_dir = os.path.join(_env_folder("nnUNet_preprocessed"), dataset, "gt_segmentations")
    if not os.path.isdir(refs_dir):
        raise CompareError(f"{refs_dir} does not exist: nnU-Net's references for the validation come from "
                           f"preprocessing. Fix: nnUNetv2_preprocess -d {args.d} (or set nnUNet_preprocessed).")
    refs = files_by_case(refs_dir, da.file_ending)
    folds = args.f if args.f is not None else sorted(set(_folds_of(fa)) & set(_folds_of(fb)))
    if not folds:
        raise CompareError(f"no fold has validation output in both {fa.path} and {fb.path}. Train and validate "
                           f"the same folds (nnUNetv2_train ... FOLD), or name them with -f.")
    reader = PlansManager(fa.plans_json).image_reader_writer_class()
    pairs_a, pairs_b, blocks = [], [], []
    for fold in folds:
        va, vb = fa.validation(fold, da.file_ending), fb.validation(fold, db.file_ending)
        _missing_cases(va, vb, fa.trainer, fb.trainer, f"fold {fold}")
        for case in sorted(va):
            if case not in refs:
                raise CompareError(f"no reference for case {case} in {refs_dir}; re-run nnUNetv2_preprocess.")
            pairs_a.append((case, va[case], refs[case]))
            pairs_b.append((case, vb[case], refs[case]))
            blocks.append(f"fold_{fold}")
    cases = [p[0] for p in pairs_a]
    if len(set(cases)) != len(cases):
        raise CompareError("a case is in the validation of more than one selected fold: the folds are not one "
                           "cross-validation split.")
    sa = CaseScores(cases, da.keys, score_cases(pairs_a, da, reader))
    sb = CaseScores(cases, da.keys, score_cases(pairs_b, db, reader))
    cost = cost_summary(fa.trainer, fb.trainer, fa.epoch_times(folds), fb.epoch_times(folds), fa.hardware(folds),
                        fb.hardware(folds))
    return sa, sb, da, blocks, {"mode": "cross-validation", "dataset": dataset, "configuration": args.c,
                                "folds": folds, "model_a": fa.path, "model_b": fb.path, "cost": cost}


def held_out(args: argparse.Namespace) -> Tuple[CaseScores, CaseScores, LabelDefinition, Optional[List[str]], dict]:
    """Both prediction folders' Dice per case against ``--labels``."""
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json

    if args.labels is None:
        raise CompareError("--test-predictions needs --labels DIR, the folder of the reference segmentations")
    dataset = _dataset_name(args.d)
    dataset_json = None
    for var in ("nnUNet_raw", "nnUNet_preprocessed"):
        path = os.path.join(os.environ.get(var, ""), dataset, "dataset.json")
        if os.environ.get(var) and os.path.isfile(path):
            with open(path) as f:
                dataset_json = json.load(f)
            break
    if dataset_json is None:
        raise CompareError(f"no dataset.json of {dataset} in nnUNet_raw or nnUNet_preprocessed: compare needs the "
                           f"dataset's label definitions. Fix: set nnUNet_raw.")
    definition = label_definition(dataset_json)
    names = args.tr or [os.path.basename(os.path.normpath(p)) for p in args.test_predictions]
    for folder in args.test_predictions + [args.labels]:
        if not os.path.isdir(folder):
            raise CompareError(f"{folder} does not exist")
    pa, pb = (files_by_case(d, definition.file_ending) for d in args.test_predictions)
    labels = files_by_case(args.labels, definition.file_ending)
    for name, pred in zip(names, (pa, pb)):
        if not pred:
            raise CompareError(f"no *{definition.file_ending} segmentations in the predictions of {name}")
    _missing_cases(pa, pb, names[0], names[1], "the test predictions")
    missing = sorted(set(pa) - set(labels))
    if missing:
        raise CompareError(f"no reference in {args.labels} for {len(missing)} predicted case(s): "
                           f"{', '.join(missing[:5])}")
    cases = sorted(pa)
    first = labels[cases[0]]
    reader = determine_reader_writer_from_dataset_json(dataset_json, first)()
    sa = CaseScores(cases, definition.keys, score_cases([(c, pa[c], labels[c]) for c in cases], definition, reader))
    sb = CaseScores(cases, definition.keys, score_cases([(c, pb[c], labels[c]) for c in cases], definition, reader))
    return sa, sb, definition, None, {"mode": "held-out", "dataset": dataset, "predictions_a": args.test_predictions[0],
                                      "predictions_b": args.test_predictions[1], "labels": args.labels}


def run_compare(args: argparse.Namespace) -> int:
    from nnunet_msa.analysis.compare_report import compare_scores, plot, table, verdict_line

    try:
        if args.test_predictions:
            sa, sb, definition, blocks, meta = held_out(args)
            names = args.tr or [os.path.basename(os.path.normpath(p)) for p in args.test_predictions]
        else:
            sa, sb, definition, blocks, meta = cross_validation(args)
            names = args.tr
        result = compare_scores(names[0], names[1], sa, sb, definition.names, args.bootstrap, blocks)
    except (CompareError, ValueError) as e:
        raise SystemExit(f"nnunet-msa compare: {e}")
    result.update(meta)
    print(verdict_line(result))
    print()
    print(table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        print(f"\nJSON: {args.json}")
    if args.plot:
        plot(result, args.plot)
        print(f"Plot: {args.plot}")
    return 0
