"""The whole of nnU-Net's routine with the MSA2 trainer (issue 8), through nnU-Net's real commands on the shared data,
at budgets of 1-2 iterations per fold:

1. Cross-validation on Task04_Hippocampus (the session's 2-fold split of 2 cases, tests/e2e_helpers.py) of
   ``nnUNetTrainerMSA2`` and nnU-Net's ``nnUNetTrainer`` (their ``_budget`` versions) on 2d and 3d_fullres
   (``nnUNetv2_train ... FOLD --npz``), ``nnUNetv2_find_best_configuration`` over both configurations and both
   trainers (its ensembles mix them), and the ``inference_instructions.txt`` it writes followed literally
   (``nnUNetv2_predict`` per model, ``nnUNetv2_ensemble``, ``nnUNetv2_apply_postprocessing``); when the winner is
   not an MSA2 + nnU-Net ensemble, the best such ensemble too, with instructions written by nnU-Net's own
   ``print_inference_instructions`` after ``nnUNetv2_determine_postprocessing``.
2. ``nnUNetv2_predict -num_parts 2 -part_id 0/1`` in two processes, ``nnUNetv2_predict_from_modelfolder``: the files
   of one ``nnUNetv2_predict`` process; ``nnUNetv2_evaluate_folder`` on MSA2's predictions against numpy's counts.
3. Regions with an ignore label and the cascade: a hippocampus dataset whose ``dataset.json`` declares the regions
   "hippocampus" = {1, 2} and "posterior" = {2} (``regions_class_order``) and an ignore label on every second slice
   (sparse annotation), planned by nnU-Net's planner with a 20 MB GPU-memory target so that it plans
   ``3d_lowres`` and ``3d_cascade_fullres``; MSA2 trains both stages (2 folds of ``3d_lowres``, whose validations
   predict every case for the next stage, then fold 0 of the cascade, whose network takes the image plus one
   one-hot channel per foreground label), ``nnUNetv2_predict`` runs lowres then cascade on an unseen case, and
   ``nnUNetv2_evaluate_folder`` scores it per region, without the ignored voxels.

The commands (with wall and CPU time) are listed at the end of the pytest summary."""
from __future__ import annotations

import itertools
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

import e2e_helpers as h
import pipeline_runs as pr

pytestmark = pytest.mark.e2e

MSA2 = "nnUNetTrainerMSA2"
CV_TRAINERS = (f"{MSA2}_budget", "nnUNetTrainer_budget")
CV_CONFIGS = ("2d", "3d_fullres")
FOLDS = h.CV_FOLDS
CPU_PREDICT = ["-device", "cpu", *h.SEQUENTIAL_PREDICT]   # added to the instructions' nnUNetv2_predict: no GPU


def _read(path: Path) -> np.ndarray:
    import SimpleITK as sitk
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _probabilities(path: Path) -> np.ndarray:
    return np.load(path)["probabilities"]


def _identifier(ds: h.Dataset, trainer: str, base: str, plans: str = "nnUNetPlans") -> str:
    return f"{trainer}__{plans}__{ds.configs.get(base, base)}"


def _cv_cases(ds: h.Dataset) -> List[str]:
    return sorted(c for fold in ds.splits for c in fold["val"])


def _fold_of(ds: h.Dataset, case: str) -> int:
    return next(k for k, fold in enumerate(ds.splits) if case in fold["val"])


# ================================================================================================ 1. cross-validation
@pytest.fixture(scope="module")
def cross_validated(hippocampus, e2e_workspace) -> Dict[tuple, Path]:
    """All folds of both trainers on both configurations (4 runs per fold of ``nnUNetv2_train ... --npz``, fold 0 of
    MSA2 shared with test_e2e_hippocampus); (trainer, configuration) -> model folder."""
    ws, ds = e2e_workspace, hippocampus
    assert len(ds.splits) == len(FOLDS)
    pr.train(ws, ds, [(t, c, f) for t in CV_TRAINERS for c in CV_CONFIGS for f in FOLDS])
    return {(t, c): pr.model_dir(ws, ds, t, ds.configs[c]) for t in CV_TRAINERS for c in CV_CONFIGS}


def test_every_fold_trained_and_validated_its_own_cases(cross_validated, hippocampus) -> None:
    ds = hippocampus
    for (trainer, base), model in cross_validated.items():
        validated = []
        for k, fold in enumerate(ds.splits):
            fold_dir = model / f"fold_{k}"
            ckpt = h.load_checkpoint(fold_dir / "checkpoint_final.pth")
            assert ckpt["trainer_name"] == trainer and ckpt["init_args"]["fold"] == k, (trainer, base, k)
            assert ckpt["current_epoch"] == pr.BUDGETS[(trainer, base)][0]
            for ending in (".nii.gz", ".npz"):   # --npz: the probabilities that ensembling needs
                written = sorted(p.name for p in (fold_dir / "validation").glob(f"*{ending}"))
                assert written == sorted(f"{c}{ending}" for c in fold["val"]), (trainer, base, k, written)
            validated += fold["val"]
        assert sorted(validated) == _cv_cases(ds) and len(set(validated)) == len(validated)


@pytest.fixture(scope="module")
def best(cross_validated, hippocampus, e2e_workspace) -> dict:
    """``nnUNetv2_find_best_configuration 4 -c 2d_bs4 3d_fullres_bs2 -tr <MSA2> <nnU-Net>`` (``-f`` the
    split's folds, ensembling allowed); its inference_information.json and inference_instructions.txt."""
    ws, ds = e2e_workspace, hippocampus
    configs = [ds.configs[c] for c in CV_CONFIGS]
    ran = h.run(["nnUNetv2_find_best_configuration", str(ds.dataset_id), "-c", *configs, "-tr", *CV_TRAINERS,
                 "-f", *map(str, FOLDS)],
                ws.env, ws.logs / "find_best_configuration.log",
                label=f"nnUNetv2_find_best_configuration 4 -c {' '.join(configs)} -tr {' '.join(CV_TRAINERS)}")
    folder = ws.results / ds.name
    with open(folder / "inference_information.json") as f:
        info = json.load(f)
    return dict(info=info, instructions=(folder / "inference_instructions.txt").read_text(), output=ran.output)


def _models(ds: h.Dataset) -> List[str]:
    """The model identifiers in nnU-Net's order (trainers outer, configurations inner)."""
    return [_identifier(ds, t, c) for t in CV_TRAINERS for c in CV_CONFIGS]


def _ensembles(ds: h.Dataset) -> List[str]:
    return [f"ensemble___{a}___{b}___{'_'.join(map(str, FOLDS))}" for a, b in itertools.combinations(_models(ds), 2)]


def _is_mixed(ensemble: str) -> bool:
    members = ensemble.split("___")[1:3]
    return {m.split("__")[0] for m in members} == set(CV_TRAINERS)


def test_find_best_configuration_scored_every_model_and_every_pair(best, cross_validated, hippocampus,
                                                                    e2e_workspace) -> None:
    """Each model's validation folds merged and scored (the score recomputed here from the merged files),
    and all six pairs ensembled, four of them MSA2 + nnU-Net; a postprocessing determined for the winner."""
    from nnunet_msa.pipeline.dice import dice_per_label

    ws, ds = e2e_workspace, hippocampus
    results = best["info"]["all_results"]
    assert set(results) == set(_models(ds)) | set(_ensembles(ds)), sorted(results)
    assert sum(_is_mixed(e) for e in _ensembles(ds)) == 4
    assert all(0.0 <= v <= 1.0 for v in results.values()), results
    cases = _cv_cases(ds)
    for (trainer, base), model in cross_validated.items():
        merged = model / f"crossval_results_folds_{'_'.join(map(str, FOLDS))}"
        assert sorted(p.name for p in merged.glob("*.nii.gz")) == [f"{c}.nii.gz" for c in cases]
        per_label = {1: [], 2: []}
        for c in cases:
            for label, d in dice_per_label(_read(merged / f"{c}.nii.gz"), _read(ds.label_file(c)), (1, 2)).items():
                per_label[label].append(d)
        ours = float(np.mean([np.nanmean(v) for v in per_label.values()]))
        assert ours == pytest.approx(results[_identifier(ds, trainer, base)], abs=1e-6), (trainer, base)
    for name in _ensembles(ds):
        folder = ws.results / ds.name / "ensembles" / name
        assert sorted(p.name for p in folder.glob("*.nii.gz")) == [f"{c}.nii.gz" for c in cases], name
    winner = best["info"]["best_model_or_ensemble"]
    assert Path(winner["postprocessing_file"]).is_file()
    assert "Run inference like this" in best["instructions"]


def test_mixed_ensembles_average_the_probabilities_of_both_trainers(best, cross_validated, hippocampus,
                                                                     e2e_workspace) -> None:
    """Every MSA2 + nnU-Net cross-validation ensemble is the argmax of the mean of the two models' validation
    probabilities (their fold's .npz)."""
    ws, ds = e2e_workspace, hippocampus
    for name in filter(_is_mixed, _ensembles(ds)):
        members = name.split("___")[1:3]
        for c in _cv_cases(ds):
            k = _fold_of(ds, c)
            probs = [_probabilities(ws.results / ds.name / m / f"fold_{k}" / "validation" / f"{c}.npz")
                     for m in members]
            assert probs[0].shape == probs[1].shape, (name, c, probs[0].shape, probs[1].shape)
            mean = probs[0].astype(np.float32)
            mean += probs[1]
            mean /= 2
            labels = _read(ws.results / ds.name / "ensembles" / name / f"{c}.nii.gz")
            assert np.array_equal(labels, mean.argmax(0)), (name, c)


def _follow(ws, ds: h.Dataset, instructions: str, inputs: Path, out: Path, tag: str) -> dict:
    """Run the commands of nnU-Net's inference instructions in order, placeholders replaced by folders under
    ``out`` (INPUT_FOLDER by ``inputs``), ``CPU_PREDICT`` added to ``nnUNetv2_predict``."""
    commands = pr.instruction_commands(instructions)
    assert commands, f"no command in the instructions:\n{instructions}"
    folders = {"INPUT_FOLDER": inputs}
    for arg in (a for cmd in commands for a in cmd):
        if arg.startswith(pr.PLACEHOLDER_PREFIXES) and arg not in folders:
            folders[arg] = out / arg.lower()
    for i, cmd in enumerate(commands):
        args = pr.substitute(cmd, folders)
        if args[0] == "nnUNetv2_predict":
            args += CPU_PREDICT
        h.run(args, ws.env, ws.logs / f"instructions_{tag}_{i}_{cmd[0]}.log", label=f"{cmd[0]} ({tag})")
    return dict(commands=commands, folders=folders)


def _option(cmd: List[str], flag: str) -> List[str]:
    """The values after ``flag`` up to the next option."""
    i = cmd.index(flag)
    values = []
    for a in cmd[i + 1:]:
        if a.startswith("-"):
            break
        values.append(a)
    return values


def _check_followed(followed: dict, selected: List[dict], ds: h.Dataset, cases: List[str]) -> None:
    """The instructions are nnU-Net's for ``selected`` and their outputs are complete, in the input geometry, with
    the dataset's labels; the ensemble averages the members' probabilities; postprocessing only removes."""
    commands, folders = followed["commands"], followed["folders"]
    kinds = [c[0] for c in commands]
    ensemble = len(selected) > 1
    assert kinds == ["nnUNetv2_predict"] * len(selected) + ["nnUNetv2_ensemble"] * ensemble + \
        ["nnUNetv2_apply_postprocessing"], kinds
    member_outputs = []
    for cmd, model in zip(commands, selected):
        assert _option(cmd, "-tr") == [model["trainer"]] and _option(cmd, "-c") == [model["configuration"]]
        assert _option(cmd, "-f") == [str(f) for f in FOLDS]
        out = folders[_option(cmd, "-o")[0]]
        assert sorted(p.name for p in out.glob("*.nii.gz")) == sorted(f"{c}.nii.gz" for c in cases), out
        member_outputs.append(out)
    final = folders["OUTPUT_FOLDER"]
    processed = folders[_option(commands[-1], "-o")[0]]
    for c in cases:
        image = ds.image_files(c)[0]
        raw, pp = _read(final / f"{c}.nii.gz"), _read(processed / f"{c}.nii.gz")
        h.assert_same_geometry(processed / f"{c}.nii.gz", image)
        assert h.label_values(processed / f"{c}.nii.gz") <= ds.labels
        assert np.all((pp == raw) | (pp == 0)), f"{c}: postprocessing changed labels instead of removing them"
        if ensemble:
            probs = [_probabilities(o / f"{c}.npz") for o in member_outputs]
            mean = probs[0].astype(np.float32)
            for p in probs[1:]:
                mean += p
            mean /= len(probs)
            assert np.array_equal(raw, mean.argmax(0)), f"{c}: the ensemble is not the mean of its members"


@pytest.fixture(scope="module")
def unseen_input(hippocampus, e2e_workspace) -> Path:
    """The case of ``predict_ids`` that no fold trained or validated on."""
    ds = hippocampus
    unseen = [c for c in ds.predict_ids if c not in _cv_cases(ds)]
    assert unseen
    return h.link_inputs(ds, unseen, e2e_workspace.root / "predict_in" / "hippocampus_unseen")


def test_inference_instructions_followed_literally(best, hippocampus, e2e_workspace, unseen_input) -> None:
    ws, ds = e2e_workspace, hippocampus
    followed = _follow(ws, ds, best["instructions"], unseen_input, ws.root / "instructions" / "winner", "winner")
    _check_followed(followed, best["info"]["best_model_or_ensemble"]["selected_model_or_models"], ds,
                    [p.name[:-len("_0000.nii.gz")] for p in unseen_input.iterdir()])


def test_best_msa2_and_nnunet_ensemble_followed_as_nnunet_writes_it(best, hippocampus, e2e_workspace,
                                                                     unseen_input) -> None:
    """The best MSA2 + nnU-Net ensemble of the cross-validation as a user runs it when it wins:
    ``nnUNetv2_determine_postprocessing`` on its cross-validation ensemble (as find_best_configuration does for the
    winner), instructions written by nnU-Net's ``print_inference_instructions`` (the function that writes
    inference_instructions.txt), followed. Skipped when that ensemble won: the previous test followed it."""
    ws, ds = e2e_workspace, hippocampus
    info = best["info"]
    selected = info["best_model_or_ensemble"]["selected_model_or_models"]
    if len(selected) == 2 and {m["trainer"] for m in selected} == set(CV_TRAINERS):
        pytest.skip("an MSA2 + nnU-Net ensemble won; test_inference_instructions_followed_literally followed it")
    mixed = [e for e in info["all_results"] if e.startswith("ensemble___") and _is_mixed(e)]
    top = max(info["all_results"][e] for e in mixed)
    name = next(e for e in mixed if info["all_results"][e] == top)   # ties: the first, as nnU-Net picks
    folder = ws.results / ds.name / "ensembles" / name
    h.run(["nnUNetv2_determine_postprocessing", "-i", str(folder), "-ref", str(ds.preprocessed_dir /
                                                                                "gt_segmentations"),
           "-plans_json", str(folder / "plans.json"), "-dataset_json", str(folder / "dataset.json")], ws.env,
          ws.logs / "determine_postprocessing_mixed.log", label="nnUNetv2_determine_postprocessing (MSA2 + nnU-Net)")
    assert (folder / "postprocessing.pkl").is_file()
    members = []
    for identifier in name.split("___")[1:3]:
        trainer, plans, configuration = identifier.split("__")
        members.append({"configuration": configuration, "trainer": trainer, "plans_identifier": plans})
    info = json.loads(json.dumps(info))
    info["best_model_or_ensemble"].update(selected_model_or_models=members,
                                          postprocessing_file=str(folder / "postprocessing.pkl"),
                                          some_plans_file=str(folder / "plans.json"))
    work = ws.root / "instructions" / "mixed"
    work.mkdir(parents=True, exist_ok=True)
    (work / "inference_information.json").write_text(json.dumps(info, indent=1))
    script = ("import json, sys\n"
              "from nnunetv2.evaluation.find_best_configuration import print_inference_instructions\n"
              "print_inference_instructions(json.load(open(sys.argv[1])), instructions_file=sys.argv[2])\n")
    h.run([sys.executable, "-c", script, str(work / "inference_information.json"),
           str(work / "inference_instructions.txt")], ws.env, ws.logs / "print_inference_instructions_mixed.log",
          label="print_inference_instructions (MSA2 + nnU-Net)")
    instructions = (work / "inference_instructions.txt").read_text()
    assert "nnUNetv2_ensemble" in instructions
    followed = _follow(ws, ds, instructions, unseen_input, work, "mixed")
    _check_followed(followed, members, ds, [p.name[:-len("_0000.nii.gz")] for p in unseen_input.iterdir()])


# ================================================================================================ 2. parts, model folder
@pytest.fixture(scope="module")
def one_process(hippocampus, e2e_workspace) -> dict:
    """``nnUNetv2_predict`` of MSA2's 2d fold-0 model on ``predict_ids`` in one process (test_e2e_hippocampus's)."""
    from test_e2e_hippocampus import _predict

    return _predict(hippocampus, e2e_workspace, "2d")


@pytest.fixture(scope="module")
def other_ways(one_process, hippocampus, e2e_workspace) -> dict:
    """The same prediction as ``nnUNetv2_predict -num_parts 2 -part_id 0`` and ``-part_id 1`` (two processes at
    once, one output folder, as on two machines sharing it) and as ``nnUNetv2_predict_from_modelfolder``."""
    ws, ds = e2e_workspace, hippocampus
    config, inputs = one_process["config"], one_process["inputs"]
    model = pr.model_dir(ws, ds, pr.MSA2_BUDGET, config)
    common = ["-f", "0", "-device", "cpu", "-npp", "1", "-nps", "1", "--disable_tta", "--save_probabilities"]
    parts_out = ws.root / "predict_out" / f"hippocampus_{config}_parts"
    folder_out = ws.root / "predict_out" / f"hippocampus_{config}_from_modelfolder"
    jobs = [pr.Job(["nnUNetv2_predict", "-i", str(inputs), "-o", str(parts_out), "-d", str(ds.dataset_id), "-c",
                    config, "-tr", pr.MSA2_BUDGET, *common, "-num_parts", "2", "-part_id", str(part)], ws.env,
                   ws.logs / f"predict_part{part}.log", f"nnUNetv2_predict 4 {config} -num_parts 2 -part_id {part}")
            for part in (0, 1)]
    jobs.append(pr.Job(["nnUNetv2_predict_from_modelfolder", "-i", str(inputs), "-o", str(folder_out), "-m",
                        str(model), *common], ws.env, ws.logs / "predict_from_modelfolder.log",
                       f"nnUNetv2_predict_from_modelfolder {model.name}"))
    ran = pr.run_jobs(jobs, parallel=2)   # the two parts start at the same time, the third when one has finished
    return dict(parts=ran[:2], parts_out=parts_out, from_folder=ran[2], folder_out=folder_out)


def _assert_same_files(a: Path, b: Path, cases: List[str]) -> None:
    for ending in (".nii.gz", ".npz"):
        assert sorted(p.name for p in a.glob(f"*{ending}")) == sorted(p.name for p in b.glob(f"*{ending}")) == \
            sorted(f"{c}{ending}" for c in cases), (a, b, ending)
    for c in cases:
        assert np.array_equal(_read(a / f"{c}.nii.gz"), _read(b / f"{c}.nii.gz")), f"{c}: labels differ"
        h.assert_same_geometry(b / f"{c}.nii.gz", a / f"{c}.nii.gz")
        pa, pb = _probabilities(a / f"{c}.npz"), _probabilities(b / f"{c}.npz")
        assert pa.shape == pb.shape and float(np.abs(pa.astype(np.float64) - pb).max()) < 1e-6, \
            f"{c}: probabilities differ"


def test_predict_in_two_parts_gives_the_files_of_one_process(one_process, other_ways, hippocampus) -> None:
    ds = hippocampus
    n = len(ds.predict_ids)
    shares = []
    for part, ran in enumerate(other_ways["parts"]):
        assert f"I am process {part} out of 2" in ran.output
        shares.append(int(re.search(r"There are (\d+) cases that I would like to predict", ran.output).group(1)))
    assert shares == [len(range(n)[0::2]), len(range(n)[1::2])] and min(shares) >= 1, shares
    _assert_same_files(one_process["out"], other_ways["parts_out"], ds.predict_ids)


def test_predict_from_modelfolder_gives_the_files_of_nnunet_predict(one_process, other_ways, hippocampus) -> None:
    _assert_same_files(one_process["out"], other_ways["folder_out"], hippocampus.predict_ids)


def _expected_counts(ref: np.ndarray, pred: np.ndarray, region, ignore_label=None) -> Dict[str, int]:
    """TP/FP/FN/TN of ``region`` (a label or a tuple of labels), voxels of ``ignore_label`` in ``ref`` left out."""
    members = region if isinstance(region, tuple) else (region,)
    r, p = np.isin(ref, members), np.isin(pred, members)
    use = ref != ignore_label if ignore_label is not None else np.ones_like(r)
    return {"TP": int((r & p & use).sum()), "FP": int((~r & p & use).sum()), "FN": int((r & ~p & use).sum()),
            "TN": int((~r & ~p & use).sum())}


def _check_summary(summary: dict, ref_dir: Path, pred_dir: Path, cases: List[str], regions: Dict[str, object],
                   ignore_label=None) -> None:
    """nnU-Net's summary.json: one entry per case, and for every case and label/region the counts of numpy and the
    Dice from them (NaN when neither has it)."""
    per_case = {Path(e["prediction_file"]).name: e["metrics"] for e in summary["metric_per_case"]}
    assert sorted(per_case) == sorted(f"{c}.nii.gz" for c in cases)
    assert set(summary["mean"]) == set(regions)
    for c in cases:
        ref, pred = _read(ref_dir / f"{c}.nii.gz"), _read(pred_dir / f"{c}.nii.gz")
        for key, region in regions.items():
            got = per_case[f"{c}.nii.gz"][key]
            want = _expected_counts(ref, pred, region, ignore_label)
            assert {k: got[k] for k in want} == want, (c, key)
            denom = 2 * want["TP"] + want["FP"] + want["FN"]
            if denom:
                assert got["Dice"] == pytest.approx(2 * want["TP"] / denom), (c, key)
            else:
                assert got["Dice"] is None or np.isnan(got["Dice"]), (c, key)


def test_evaluate_folder_scores_msa2_predictions(one_process, hippocampus, e2e_workspace, tmp_path) -> None:
    """``nnUNetv2_evaluate_folder`` of MSA2's predictions against the references: numpy's counts per label."""
    ws, ds = e2e_workspace, hippocampus
    ref = tmp_path / "reference"
    ref.mkdir()
    for c in ds.predict_ids:
        (ref / f"{c}.nii.gz").symlink_to(ds.label_file(c))
    model = pr.model_dir(ws, ds, pr.MSA2_BUDGET, one_process["config"])
    h.run(["nnUNetv2_evaluate_folder", str(ref), str(one_process["out"]), "-djfile", str(model / "dataset.json"),
           "-pfile", str(model / "plans.json"), "-o", str(tmp_path / "summary.json")], ws.env,
          ws.logs / "evaluate_folder_hippocampus.log", label="nnUNetv2_evaluate_folder (hippocampus 2d)")
    with open(tmp_path / "summary.json") as f:
        summary = json.load(f)
    _check_summary(summary, ref, one_process["out"], ds.predict_ids, {"1": 1, "2": 2})


# ================================================================================================ 3. regions, cascade
REGIONS_ID = 504
REGIONS_PLANS = "nnUNetPlans_20MB"
GPU_MEMORY_TARGET_GB = "0.02"   # the hippocampus cases chosen below then get a 3d_lowres stage (3 stages, 3.5x fewer voxels)
IGNORE = 3
REGION_LABELS = {"background": 0, "hippocampus": [1, 2], "posterior": 2, "ignore": IGNORE}
REGION_KEYS = {"(1, 2)": (1, 2), "2": 2}       # nnU-Net's summary keys of the two regions
CASCADE_BUDGETS = {(pr.MSA2_BUDGET, "3d_lowres"): (1, 1, 1), (pr.MSA2_BUDGET, "3d_cascade_fullres"): (1, 1, 1)}


def _sparse_label(src: Path, dst: Path) -> None:
    """The label with every second slice unannotated (the ignore label), as sparse annotations come."""
    import SimpleITK as sitk

    img = sitk.ReadImage(str(src))
    arr = sitk.GetArrayFromImage(img).astype(np.uint8)
    arr[1::2] = IGNORE
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(img)
    sitk.WriteImage(out, str(dst))


@pytest.fixture(scope="module")
def regions(hippocampus, e2e_workspace) -> h.Dataset:
    """Dataset504: 3 hippocampus cases (the 2 largest, whose size makes the small-memory planner add a lowres
    stage, and the smallest, validated by the cascade's fold 0), labels as regions with an ignore label; planned and
    preprocessed by ``nnUNetv2_plan_and_preprocess -gpu_memory_target 0.02 -overwrite_plans_name nnUNetPlans_20MB
    -c 3d_lowres 3d_fullres``; a 2-fold split (fold 0 validates the smallest case, fold 1 the two others).
    ``predict_ids``: one more case in imagesTs, its reference in labelsTs."""
    import SimpleITK as sitk

    ws, src = e2e_workspace, hippocampus
    sizes = {}
    for f in (src.raw_dir / "imagesTr").glob("*_0000.nii.gz"):
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(f))
        reader.ReadImageInformation()
        sizes[f.name[:-len("_0000.nii.gz")]] = int(np.prod(reader.GetSize()))
    by_size = sorted(sizes, key=lambda c: (sizes[c], c))
    large, small, unseen = by_size[-2:], by_size[0], by_size[1]
    raw = ws.raw / f"Dataset{REGIONS_ID}_HippocampusRegions"
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (raw / sub).mkdir(parents=True, exist_ok=True)
    for case, (images, labels) in [(c, ("imagesTr", "labelsTr")) for c in large + [small]] + \
                                  [(unseen, ("imagesTs", "labelsTs"))]:
        (raw / images / f"{case}_0000.nii.gz").symlink_to(src.image_files(case)[0])
        _sparse_label(src.label_file(case), raw / labels / f"{case}.nii.gz")
    meta = {"channel_names": {"0": "MRI"}, "labels": REGION_LABELS, "regions_class_order": [1, 2],
            "numTraining": 3, "file_ending": ".nii.gz",
            "name": "HippocampusRegions", "description": "test copy of Task04_Hippocampus: regions hippocampus "
            "(anterior + posterior) and posterior, every second slice unannotated (ignore label)"}
    (raw / "dataset.json").write_text(json.dumps(meta, indent=2))
    h.run(["nnUNetv2_plan_and_preprocess", "-d", str(REGIONS_ID), "-gpu_memory_target", GPU_MEMORY_TARGET_GB,
           "-overwrite_plans_name", REGIONS_PLANS, "-c", "3d_lowres", "3d_fullres", "-np", "1", "-npfp", "1"],
          ws.env, ws.logs / "regions_plan_and_preprocess.log",
          label=f"nnUNetv2_plan_and_preprocess {REGIONS_ID} -gpu_memory_target {GPU_MEMORY_TARGET_GB}")
    ds = h.Dataset(dataset_id=REGIONS_ID, name=raw.name, raw_dir=raw, preprocessed_dir=ws.preprocessed / raw.name,
                   labels={0, 1, 2}, file_ending=".nii.gz", num_channels=1)
    ds.splits = [{"train": large, "val": [small]}, {"train": [small], "val": large}]
    (ds.preprocessed_dir / "splits_final.json").write_text(json.dumps(ds.splits, indent=2))
    ds.train_ids, ds.val_ids, ds.predict_ids = large, [small], [unseen]
    return ds


def test_planner_made_a_lowres_stage_and_a_cascade(regions) -> None:
    with open(regions.preprocessed_dir / f"{REGIONS_PLANS}.json") as f:
        configs = json.load(f)["configurations"]
    assert configs["3d_lowres"]["next_stage"] == "3d_cascade_fullres", sorted(configs)
    assert configs["3d_cascade_fullres"] == {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"}
    assert all(lo > full for lo, full in zip(configs["3d_lowres"]["spacing"], configs["3d_fullres"]["spacing"]))


@pytest.fixture(scope="module")
def cascade(regions, e2e_workspace) -> dict:
    """MSA2 on ``3d_lowres`` folds 0 and 1 (at once), then on ``3d_cascade_fullres`` fold 0; then
    ``nnUNetv2_predict`` of the unseen case with ``3d_lowres`` (folds 0 1) and with the cascade from that."""
    ws, ds = e2e_workspace, regions
    runs = pr.train(ws, ds, [(pr.MSA2_BUDGET, "3d_lowres", 0), (pr.MSA2_BUDGET, "3d_lowres", 1)],
                    plans=REGIONS_PLANS, budgets=CASCADE_BUDGETS)
    runs.update(pr.train(ws, ds, [(pr.MSA2_BUDGET, "3d_cascade_fullres", 0)], plans=REGIONS_PLANS,
                         budgets=CASCADE_BUDGETS))
    inputs = ds.raw_dir / "imagesTs"
    out = ws.root / "predict_out" / "regions"
    common = ["-d", str(ds.dataset_id), "-p", REGIONS_PLANS, "-tr", pr.MSA2_BUDGET, "-device", "cpu",
              *h.SEQUENTIAL_PREDICT, "--disable_tta", "--save_probabilities"]
    outputs = {}
    outputs["lowres"] = h.run(["nnUNetv2_predict", "-i", str(inputs), "-o", str(out / "lowres"), "-c", "3d_lowres",
                               "-f", "0", "1", *common], ws.env, ws.logs / "regions_predict_lowres.log",
                              label="nnUNetv2_predict 504 3d_lowres -f 0 1").output
    outputs["cascade"] = h.run(["nnUNetv2_predict", "-i", str(inputs), "-o", str(out / "cascade"), "-c",
                                "3d_cascade_fullres", "-f", "0", "-prev_stage_predictions", str(out / "lowres"),
                                *common], ws.env, ws.logs / "regions_predict_cascade.log",
                               label="nnUNetv2_predict 504 3d_cascade_fullres -prev_stage_predictions").output
    return dict(runs=runs, lowres=out / "lowres", cascade=out / "cascade", outputs=outputs,
                lowres_model=pr.model_dir(ws, ds, pr.MSA2_BUDGET, "3d_lowres", REGIONS_PLANS),
                cascade_model=pr.model_dir(ws, ds, pr.MSA2_BUDGET, "3d_cascade_fullres", REGIONS_PLANS))


def test_lowres_folds_predicted_every_case_for_the_next_stage(cascade, regions) -> None:
    folder = cascade["lowres_model"] / "predicted_next_stage" / "3d_cascade_fullres"
    assert sorted(p.name.split(".")[0] for p in folder.iterdir()) == sorted(regions.train_ids + regions.val_ids)


def test_msa2_takes_the_previous_stage_as_one_hot_input_channels(cascade, regions) -> None:
    """The checkpoints hold exactly the network ``nnUNetTrainerMSA2_budget`` builds from the saved plans with
    nnU-Net's input-channel count (image + one channel per foreground label for the cascade: 3; the lowres stage:
    1) and one output per region; the first convolution of the encoder takes those channels."""
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    from nnunet_msa.training import nnUNetTrainerMSA2_budget

    for key, expected_inputs in (("lowres_model", 1), ("cascade_model", 3)):
        model = cascade[key]
        config = "3d_lowres" if key == "lowres_model" else "3d_cascade_fullres"
        pm = PlansManager(str(model / "plans.json"))
        dataset_json = json.loads((model / "dataset.json").read_text())
        cm = pm.get_configuration(config)
        lm = pm.get_label_manager(dataset_json)
        assert lm.has_regions and lm.ignore_label == IGNORE and lm.num_segmentation_heads == 2
        n_in = determine_num_input_channels(pm, cm, dataset_json)
        assert n_in == expected_inputs
        net = nnUNetTrainerMSA2_budget.build_network_architecture(pm, cm, n_in, lm.num_segmentation_heads, True)
        ckpt = h.load_checkpoint(model / "fold_0" / "checkpoint_final.pth")
        assert ckpt["trainer_name"] == pr.MSA2_BUDGET and ckpt["init_args"]["configuration"] == config
        weights = ckpt["network_weights"]
        assert set(weights) == set(net.state_dict()), config
        for k, v in net.state_dict().items():
            assert tuple(weights[k].shape) == tuple(v.shape), (config, k)
        first_conv = next(v for k, v in weights.items() if k.startswith("encoder.") and k.endswith(".weight")
                          and v.ndim == 5)
        assert first_conv.shape[1] == expected_inputs, (config, tuple(first_conv.shape))


def test_region_validation_leaves_out_the_ignore_label(cascade, regions) -> None:
    """nnU-Net's end-of-training validation of every stage and fold: per region, from numpy's counts without the
    ignored voxels, against the sparse references; label maps without the ignore label; probabilities per region."""
    ds = regions
    folds = [("lowres_model", 0), ("lowres_model", 1), ("cascade_model", 0)]
    for key, fold in folds:
        validation = cascade[key] / f"fold_{fold}" / "validation"
        with open(validation / "summary.json") as f:
            summary = json.load(f)
        _check_summary(summary, ds.raw_dir / "labelsTr", validation, ds.splits[fold]["val"], REGION_KEYS, IGNORE)
        for c in ds.splits[fold]["val"]:
            assert h.label_values(validation / f"{c}.nii.gz") <= {0, 1, 2}
            h.assert_same_geometry(validation / f"{c}.nii.gz", ds.raw_dir / "imagesTr" / f"{c}_0000.nii.gz")
            assert _probabilities(validation / f"{c}.npz").shape[0] == 2


def test_cascade_predicts_from_the_lowres_prediction(cascade, regions) -> None:
    """Both stages predicted in fresh processes that found MSA2 through nnUNet_extTrainer: one label map per input,
    in its geometry, regions painted in ``regions_class_order`` from the saved per-region probabilities."""
    from nnunet_msa.pipeline.trainers_path import trainers_path

    ds = regions
    for stage in ("lowres", "cascade"):
        assert f"Using trainer '{pr.MSA2_BUDGET}' from: {trainers_path()}" in cascade["outputs"][stage], stage
        written = sorted(p.name for p in cascade[stage].glob("*.nii.gz"))
        assert written == sorted(f"{c}.nii.gz" for c in ds.predict_ids), (stage, written)
        for c in ds.predict_ids:
            pred = cascade[stage] / f"{c}.nii.gz"
            h.assert_same_geometry(pred, ds.raw_dir / "imagesTs" / f"{c}_0000.nii.gz")
            assert h.label_values(pred) <= {0, 1, 2}, stage
            probs = _probabilities(cascade[stage] / f"{c}.npz")
            assert probs.shape == (2,) + _read(pred).shape, (stage, probs.shape)
            assert probs.min() >= 0 and probs.max() <= 1
            # the label map is nnU-Net's region order: region "hippocampus" paints 1, then "posterior" paints 2
            expected = np.zeros(probs.shape[1:], dtype=np.uint8)
            expected[probs[0] > 0.5] = 1
            expected[probs[1] > 0.5] = 2
            assert np.array_equal(_read(pred), expected), (stage, c)


def test_evaluate_folder_scores_regions_without_the_ignored_voxels(cascade, regions, e2e_workspace,
                                                                    tmp_path) -> None:
    ws, ds = e2e_workspace, regions
    model = cascade["cascade_model"]
    h.run(["nnUNetv2_evaluate_folder", str(ds.raw_dir / "labelsTs"), str(cascade["cascade"]), "-djfile",
           str(model / "dataset.json"), "-pfile", str(model / "plans.json"), "-o", str(tmp_path / "summary.json")],
          ws.env, ws.logs / "evaluate_folder_regions.log", label="nnUNetv2_evaluate_folder (regions, ignore label)")
    with open(tmp_path / "summary.json") as f:
        summary = json.load(f)
    _check_summary(summary, ds.raw_dir / "labelsTs", cascade["cascade"], ds.predict_ids, REGION_KEYS, IGNORE)


def test_nnunet_cascade_instructions_omit_the_lowres_step(cascade, regions, e2e_workspace) -> None:
    """Pins the nnU-Net 2.8.1 caveat in the README: the command find_best_configuration writes for a winning
    ``3d_cascade_fullres`` (``generate_inference_command``) has no lowres prediction and no
    ``-prev_stage_predictions``, so it has to be run as in ``cascade`` above (nnUNetv2_predict then stops with
    nnU-Net's "requires the segmentations of the previous stage"). It checks
    ``'previous_stage' in plans_manager.available_configurations`` (a configuration named "previous_stage") and then
    overwrites the command it built. When this fails, nnU-Net fixed it: update the README."""
    ws, ds = e2e_workspace, regions
    script = ("import sys\n"
              "from nnunetv2.evaluation.find_best_configuration import generate_inference_command\n"
              "print('COMMAND:', generate_inference_command(int(sys.argv[1]), '3d_cascade_fullres', sys.argv[2], "
              "sys.argv[3]))\n")
    ran = h.run([sys.executable, "-c", script, str(ds.dataset_id), REGIONS_PLANS, pr.MSA2_BUDGET], ws.env,
                ws.logs / "cascade_inference_command.log", label="generate_inference_command (cascade)")
    command = ran.output.split("COMMAND:", 1)[1].strip()
    assert command.count("nnUNetv2_predict") == 1 and "-c 3d_cascade_fullres" in command, command
    assert "3d_lowres" not in command and "-prev_stage_predictions" not in command, command


# ================================================================================================ 4. compare
def _compare(ws, args: List[str], label: str, check: bool = True) -> h.Ran:
    return h.run(["nnunet-msa", "compare", *args], ws.env, ws.logs / f"compare_{label}.log", check=check,
                 label=f"nnunet-msa compare ({label})")


def test_compare_cross_validation_pairs_every_validated_case_as_nnunet_scores_it(cross_validated, hippocampus,
                                                                                  e2e_workspace, tmp_path) -> None:
    """``nnunet-msa compare`` on hippocampus 2d without ``-f``: both folds found, every validated case once, its Dice per label exactly
    what nnU-Net's own validation wrote (``fold_k/validation/summary.json``), the verdict line, table, JSON and
    plot; the cost from the training logs."""
    ws, ds = e2e_workspace, hippocampus
    a, b = "nnUNetTrainer_budget", f"{MSA2}_budget"
    out_json, out_png = tmp_path / "compare.json", tmp_path / "compare.png"
    # no -f: every fold both trainers validated (nnU-Net's split of this dataset has these folds)
    ran = _compare(ws, ["-d", str(ds.dataset_id), "-c", ds.configs["2d"], "-tr", a, b,
                        "--json", str(out_json), "--plot", str(out_png)], "cv")
    result = json.loads(out_json.read_text())
    assert sorted(result["per_case"]) == _cv_cases(ds) and result["n_cases"] == len(_cv_cases(ds))
    assert result["folds"] == list(FOLDS) and result["bootstrap"] == "folds as blocks, then cases"
    first = ran.output.strip().splitlines()[0]
    assert re.match(rf"^({b} is ahead|{b} is behind|No difference shown between {b} and {a}): [+-]\d\.\d{{4}} "
                    rf"\[[+-]\d\.\d{{4}}, [+-]\d\.\d{{4}}\]", first), first
    assert result["b_wins"] + result["a_wins"] + result["ties"] == result["n_cases"]
    assert result["low"] <= result["difference"] <= result["high"]
    for trainer, side in ((a, "a"), (b, "b")):
        for k in FOLDS:
            summary = json.loads((cross_validated[(trainer, "2d")] / f"fold_{k}" / "validation" /
                                  "summary.json").read_text())
            for entry in summary["metric_per_case"]:
                case = Path(entry["prediction_file"]).name[: -len(".nii.gz")]
                dice = [m["Dice"] for m in entry["metrics"].values() if not np.isnan(m["Dice"])]
                assert abs(np.mean(dice) - result["per_case"][case][f"dice_{side}"]) < 1e-9, (trainer, case)
    assert [lab["name"] for lab in result["per_label"]] == ["Anterior", "Posterior"]
    assert result["cost"]["epochs_a"] == len(FOLDS) and result["cost"]["ratio_b_to_a"] > 0
    assert "| mean foreground Dice |" in ran.output and "Cost: mean epoch" in ran.output
    assert out_png.stat().st_size > 5000


def test_compare_test_predictions_with_regions_and_ignore_label(cascade, regions, e2e_workspace, tmp_path) -> None:
    """Held-out mode on the regions dataset: the unseen case's lowres and cascade predictions against its sparse
    reference, per region, the ignored slices left out (as ``nnUNetv2_evaluate_folder``)."""
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    ws, ds = e2e_workspace, regions
    out = tmp_path / "regions.json"
    ran = _compare(ws, ["-d", str(ds.dataset_id), "--test-predictions", str(cascade["lowres"]), str(cascade["cascade"]),
                  "--labels", str(ds.raw_dir / "labelsTs"), "-tr", "lowres", "cascade", "--json", str(out)], "regions")
    result = json.loads(out.read_text())
    assert [lab["key"] for lab in result["per_label"]] == ["(1, 2)", "2"]
    assert result["verdict"] == "no difference shown" and "only 1 case" in ran.output   # one case: no interval
    case = ds.predict_ids[0]
    ref = str(ds.raw_dir / "labelsTs" / f"{case}.nii.gz")
    for name, folder in (("a", cascade["lowres"]), ("b", cascade["cascade"])):
        metrics = compute_metrics(ref, str(folder / f"{case}.nii.gz"), SimpleITKIO(), [(1, 2), (2,)], IGNORE)
        dice = [m["Dice"] for m in metrics["metrics"].values() if not np.isnan(m["Dice"])]
        assert abs(result["per_case"][case][f"dice_{name}"] - np.mean(dice)) < 1e-9


def test_compare_names_each_bad_input_and_its_fix(cross_validated, hippocampus, e2e_workspace, tmp_path) -> None:
    ws, ds = e2e_workspace, hippocampus
    a, b, config = "nnUNetTrainer_budget", f"{MSA2}_budget", ds.configs["2d"]
    base = ["-d", str(ds.dataset_id), "-c", config]
    ran = _compare(ws, base + ["-tr", a, "nnUNetTrainerMSA2_typo"], "no_folder", check=False)
    assert ran.returncode != 0 and "Trained there:" in ran.output and f"{b}__nnUNetPlans__{config}" in ran.output
    ran = _compare(ws, base + ["-tr", a, b, "-f", "0", "3"], "no_fold", check=False)
    assert ran.returncode != 0 and "fold 3 is not trained" in ran.output and "nnUNetv2_train" in ran.output
    # another label definition: a copy of B's model folder whose dataset.json names a third label
    results = Path(ws.env["nnUNet_results"]) / ds.name
    other = results / f"{MSA2}_relabelled__nnUNetPlans__{config}"
    if not other.exists():
        shutil.copytree(cross_validated[(b, "2d")], other)
        meta = json.loads((other / "dataset.json").read_text())
        meta["labels"]["Extra"] = 3
        (other / "dataset.json").write_text(json.dumps(meta))
    ran = _compare(ws, base + ["-tr", a, f"{MSA2}_relabelled"], "labels", check=False)
    assert ran.returncode != 0 and "define different labels or regions" in ran.output
    # different cases: B's predictions without one case
    pa, pb = tmp_path / "a", tmp_path / "b"
    shutil.copytree(cross_validated[(a, "2d")] / "fold_0" / "validation", pa)
    shutil.copytree(cross_validated[(b, "2d")] / "fold_1" / "validation", pb)
    ran = _compare(ws, ["-d", str(ds.dataset_id), "--test-predictions", str(pa), str(pb), "--labels",
                        str(ds.raw_dir / "labelsTr")], "cases", check=False)
    assert ran.returncode != 0 and "did not predict the same cases" in ran.output and "only in" in ran.output
