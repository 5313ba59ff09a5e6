"""Helpers of the end-to-end tests: where the shared data is, how to run nnU-Net's real commands (and time them),
how to make small nnU-Net raw datasets from the shared ones, and the checks on nnU-Net's outputs.

Nothing here is imported by the package; nothing here writes outside the folders the tests pass in."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA_ENV = "NNUNET_MSA_SHARED_DATA"

# The hippocampus split of the e2e session (tests/conftest.py): a real 2-fold cross-validation of the 2 smallest cases
# (each fold trains on one and validates the other), the smallest split nnU-Net's accumulate_cv_results /
# find_best_configuration accept (every case validated by exactly one fold; ``-f 0 1``). nnU-Net validates at the
# end of every training, so one small validation case per fold is cheapest, and each fold more costs four trainings
# of the cross-validation (two trainers, two configurations). Fold 0 (the one most tests train) validates the
# smallest case.
HIPPOCAMPUS_FOLDS = 2
CV_FOLDS = tuple(range(HIPPOCAMPUS_FOLDS))
#: ``nnUNetv2_predict`` in one process (nnU-Net's ``predict_from_files_sequential``): the default path starts a
#: preprocessing and an export process, each importing torch and nnU-Net again (~16 of ~37 CPU s of a 1-3 case
#: prediction on 2 cores; the same segmentation, checked on hippocampus). The tests about the multi-process path
#: (``-num_parts``, ``nnUNetv2_predict_from_modelfolder``, the first hippocampus prediction, a missing channel, the
#: demo, the protocol) keep ``-npp 1 -nps 1``; sequential mode ignores ``-num_parts``.
SEQUENTIAL_PREDICT = ("-npp", "0", "-nps", "0")

# (command label, wall seconds, CPU seconds of the command and its children) of every command run, for the summary
TIMINGS: List[tuple] = []


def shared_data_dir() -> Path:
    """``$NNUNET_MSA_SHARED_DATA``, else ``<repo>/../shared/data`` (where CI puts it)."""
    override = os.environ.get(SHARED_DATA_ENV, "").strip()
    return Path(override) if override else REPO.parent / "shared" / "data"


def console_script(name: str) -> str:
    """An installed console script (the package's own lookup: beside this interpreter, else on PATH)."""
    from nnunet_msa.pipeline.commands import console_script as find

    return find(name)


# ------------------------------------------------------------------------------------------------ running commands
@dataclass
class Ran:
    """A finished command: exit code, combined stdout+stderr, wall and CPU seconds."""
    args: List[str]
    returncode: int
    output: str
    wall: float
    cpu: float


def run(args: Sequence[str], env: Dict[str, str], log_path: Path, check: bool = True, label: str = "") -> Ran:
    """Run a command (first element: a console-script name or a path) with ``env``; log stdout+stderr to
    ``log_path``. With ``check``, a non-zero exit fails the test with the command and the last lines of output
    (through the package's own ``run_command``)."""
    from nnunet_msa.pipeline.commands import CommandFailed, run_command

    args = list(args)
    if os.sep not in args[0]:
        args[0] = console_script(args[0])
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    if check:
        try:
            run_command(args, env, log_path=str(log_path))
            code = 0
        except CommandFailed as e:
            raise AssertionError(f"{e}\n(full log: {log_path})") from None
        output = log_path.read_text(errors="replace")
    else:
        proc = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        code, output = proc.returncode, proc.stdout
        log_path.write_text(output)
    wall = time.time() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    TIMINGS.append((label or " ".join(Path(a).name if i == 0 else a for i, a in enumerate(args[:6])), wall, cpu))
    return Ran(args, code, output, wall, cpu)


def with_budget(env: Dict[str, str], epochs: int, iterations: int, val_iterations: int,
                validation: str = "no_mirroring") -> Dict[str, str]:
    """A copy of ``env`` with the budget of the ``*_budget`` trainers. ``validation``: their end-of-training
    validation (``nnunet_msa.training.budget_trainers.VALIDATION_MODES``): without test-time mirroring unless a test
    asks for ``full``; ``off`` where a test does not look at it (nnU-Net's validation of one case costs a 2D budget
    run ~12 CPU s with mirroring and ~25 CPU s in its spawned export and metrics workers, of ~55 in all)."""
    out = dict(env)
    out.update(nnUNetMSA_epochs=str(epochs), nnUNetMSA_iterations=str(iterations),
               nnUNetMSA_val_iterations=str(val_iterations), nnUNetMSA_validation=validation)
    return out


# ------------------------------------------------------------------------------------------------ datasets
@dataclass
class Dataset:
    """An nnU-Net raw dataset in the test workspace, planned and preprocessed, with a split."""
    dataset_id: int
    name: str                     # DatasetXXX_Name
    raw_dir: Path
    preprocessed_dir: Path
    labels: Set[int]              # label values of dataset.json
    file_ending: str
    num_channels: int
    configs: Dict[str, str] = field(default_factory=dict)   # planned configuration -> small-batch configuration
    train_ids: List[str] = field(default_factory=list)
    val_ids: List[str] = field(default_factory=list)
    splits: List[dict] = field(default_factory=list)        # splits_final.json: [{"train": [...], "val": [...]}]
    predict_ids: List[str] = field(default_factory=list)    # cases the prediction tests use (none trained on)

    def image_files(self, case: str) -> List[Path]:
        return [self.raw_dir / "imagesTr" / f"{case}_{c:04d}{self.file_ending}" for c in range(self.num_channels)]

    def label_file(self, case: str) -> Path:
        return self.raw_dir / "labelsTr" / f"{case}{self.file_ending}"


def read_dataset_json(raw_dir: Path) -> dict:
    with open(Path(raw_dir) / "dataset.json") as f:
        return json.load(f)


def dataset_from_raw(dataset_id: int, raw_dir: Path, preprocessed_root: Path) -> Dataset:
    meta = read_dataset_json(raw_dir)
    labels = {int(v) for v in meta["labels"].values() if not isinstance(v, (list, tuple))}
    return Dataset(dataset_id=dataset_id, name=Path(raw_dir).name, raw_dir=Path(raw_dir),
                   preprocessed_dir=Path(preprocessed_root) / Path(raw_dir).name, labels=labels,
                   file_ending=meta["file_ending"], num_channels=len(meta["channel_names"]))


def _write_dataset_json(src_raw: Path, dst_raw: Path, n_cases: int, note: str) -> None:
    meta = read_dataset_json(src_raw)
    meta["numTraining"] = n_cases
    meta["note"] = note
    with open(dst_raw / "dataset.json", "w") as f:
        json.dump(meta, f, indent=2)


def cropped_png_dataset(src_raw: Path, dst_raw: Path, size: int, cases: Optional[Sequence[str]] = None) -> List[str]:
    """Centre ``size``×``size`` crops of a 2D PNG nnU-Net raw dataset (images and labels); returns the case ids."""
    import SimpleITK as sitk
    from nnunet_msa.pipeline.plans_edit import case_ids

    cases = list(cases) if cases is not None else case_ids(str(src_raw))
    n_channels = len(read_dataset_json(src_raw)["channel_names"])
    for sub in ("imagesTr", "labelsTr"):
        (dst_raw / sub).mkdir(parents=True, exist_ok=True)

    def crop(src: Path, dst: Path) -> None:
        arr = sitk.GetArrayFromImage(sitk.ReadImage(str(src)))
        y0, x0 = (arr.shape[0] - size) // 2, (arr.shape[1] - size) // 2
        if y0 < 0 or x0 < 0:
            raise ValueError(f"{src} ({arr.shape}) is smaller than the crop {size}")
        sitk.WriteImage(sitk.GetImageFromArray(np.ascontiguousarray(arr[y0:y0 + size, x0:x0 + size])), str(dst))

    for case in cases:
        for c in range(n_channels):
            crop(src_raw / "imagesTr" / f"{case}_{c:04d}.png", dst_raw / "imagesTr" / f"{case}_{c:04d}.png")
        crop(src_raw / "labelsTr" / f"{case}.png", dst_raw / "labelsTr" / f"{case}.png")
    _write_dataset_json(src_raw, dst_raw, len(cases), f"test copy: centre {size}x{size} crops of {src_raw.name}")
    return cases


def cropped_nifti_dataset(src_raw: Path, dst_raw: Path, size_xy: int, n_slices: int,
                          cases: Optional[Sequence[str]] = None) -> List[str]:
    """Sub-volumes of a 3D NIfTI nnU-Net raw dataset centred on each case's foreground: ``size_xy`` in-plane,
    ``n_slices`` along z, every channel and the label cut alike. SimpleITK's slicing keeps spacing and direction
    and moves the origin to the first kept voxel, so the crops are valid images in their own right."""
    import SimpleITK as sitk
    from nnunet_msa.pipeline.plans_edit import case_ids

    cases = list(cases) if cases is not None else case_ids(str(src_raw))
    meta = read_dataset_json(src_raw)
    n_channels, ending = len(meta["channel_names"]), meta["file_ending"]
    for sub in ("imagesTr", "labelsTr"):
        (dst_raw / sub).mkdir(parents=True, exist_ok=True)
    for case in cases:
        label = sitk.ReadImage(str(src_raw / "labelsTr" / f"{case}{ending}"))
        arr = sitk.GetArrayViewFromImage(label)  # z, y, x
        fg = np.argwhere(arr > 0)
        centre = ((fg.min(0) + fg.max(0)) // 2) if len(fg) else np.array(arr.shape) // 2
        lo = []
        for axis, extent in zip(range(3), (n_slices, size_xy, size_xy)):
            if extent > arr.shape[axis]:
                raise ValueError(f"{case}: crop {extent} along axis {axis} exceeds {arr.shape}")
            lo.append(int(min(max(centre[axis] - extent // 2, 0), arr.shape[axis] - extent)))
        z0, y0, x0 = lo

        def cut(img):  # SimpleITK indexes x, y, z
            return img[x0:x0 + size_xy, y0:y0 + size_xy, z0:z0 + n_slices]

        for c in range(n_channels):
            name = f"{case}_{c:04d}{ending}"
            sitk.WriteImage(cut(sitk.ReadImage(str(src_raw / "imagesTr" / name))), str(dst_raw / "imagesTr" / name))
        sitk.WriteImage(sitk.Cast(cut(label), sitk.sitkUInt8), str(dst_raw / "labelsTr" / f"{case}{ending}"))
    _write_dataset_json(src_raw, dst_raw, len(cases),
                        f"test copy: {n_slices}x{size_xy}x{size_xy} crops around the foreground of {src_raw.name}")
    return cases


def write_cross_validation_split(preprocessed_dir: Path, cases: Sequence[str], n_folds: int = 5) -> List[dict]:
    """Write ``splits_final.json`` for an ``n_folds``-fold cross-validation of ``cases``: fold k validates
    ``cases[k::n_folds]`` and trains on the rest (every case is validated by exactly one fold, as
    nnU-Net's ``accumulate_cv_results`` and ``find_best_configuration`` require). Returns the folds."""
    cases = list(cases)
    if len(cases) < n_folds:
        raise ValueError(f"{n_folds} folds need at least {n_folds} cases, got {len(cases)}")
    folds = []
    for k in range(n_folds):
        val = cases[k::n_folds]
        folds.append({"train": [c for c in cases if c not in val], "val": val})
    with open(Path(preprocessed_dir) / "splits_final.json", "w") as f:
        json.dump(folds, f, indent=2)
    return folds


def link_inputs(dataset: Dataset, cases: Sequence[str], folder: Path) -> Path:
    """A prediction input folder with symlinks to the cases' images (all channels)."""
    folder.mkdir(parents=True, exist_ok=True)
    for case in cases:
        for f in dataset.image_files(case):
            target = folder / f.name
            if not target.exists():
                target.symlink_to(f)
    return folder


# ------------------------------------------------------------------------------------------------ checks
def read_image(path: Path):
    import SimpleITK as sitk
    return sitk.ReadImage(str(path))


def assert_same_geometry(prediction: Path, image: Path) -> None:
    """Size, spacing, origin and direction of ``prediction`` equal those of ``image`` (SimpleITK)."""
    p, i = read_image(prediction), read_image(image)
    assert p.GetSize() == i.GetSize(), f"{prediction.name}: size {p.GetSize()} != input's {i.GetSize()}"
    for what in ("GetSpacing", "GetOrigin", "GetDirection"):
        a, b = np.array(getattr(p, what)()), np.array(getattr(i, what)())
        assert np.allclose(a, b, rtol=0, atol=1e-4), f"{prediction.name}: {what[3:]} {a} != input's {b}"


def assert_same_shape(prediction: Path, image: Path) -> None:
    """For formats without geometry (PNG): the arrays have the same shape."""
    import SimpleITK as sitk
    a = sitk.GetArrayViewFromImage(read_image(prediction)).shape
    b = sitk.GetArrayViewFromImage(read_image(image)).shape
    assert a == b, f"{prediction.name}: shape {a} != input's {b}"


def label_values(path: Path) -> Set[int]:
    import SimpleITK as sitk
    arr = sitk.GetArrayFromImage(read_image(path))
    values = np.unique(arr)
    assert np.all(values == np.round(values)), f"{path.name} holds non-integer labels {values[:10]}"
    return {int(v) for v in values}


def label_array(path: Path) -> np.ndarray:
    """The voxels of a segmentation file."""
    import SimpleITK as sitk
    return sitk.GetArrayFromImage(read_image(path))


def load_checkpoint(path: Path) -> dict:
    import torch
    return torch.load(str(path), map_location="cpu", weights_only=False)
