"""Session fixtures of the end-to-end tests: one nnU-Net workspace per pytest session (under pytest's temporary
folder) and the Task04_Hippocampus dataset converted, planned, preprocessed and split in it.

The data comes from ``<repo>/../shared/data`` (override: ``$NNUNET_MSA_SHARED_DATA``). The e2e tests skip only when
that folder is absent; anything missing inside it is an error."""
from __future__ import annotations

import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List

# Before anything imports torch: with OpenMP's default active waiting, a core shared with another busy process (the
# other pytest-xdist worker, an nnU-Net command) stalls every parallel region of this process; passive waiting does
# not. Results are unchanged. An explicit setting is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402

import e2e_helpers as h  # noqa: E402
from shared_build import built_once, copy_into  # noqa: E402

#: nnU-Net's planners and the MSA2 planners (run by ``nnunet-msa plan``), plans name -> planner class
NNUNET_PLANNERS = {"nnUNetPlans": "ExperimentPlanner", "nnUNetResEncUNetMPlans": "nnUNetPlannerResEncM"}
MSA2_PLANNERS = {"nnUNetMSA2Plans": "nnUNetMSA2Planner", "nnUNetMSA2ResEncPlans": "nnUNetMSA2ResEncPlanner"}

HIPPOCAMPUS_ID = 4
HIPPOCAMPUS_CONFIGS = {"2d": ("2d_bs4", 4), "3d_fullres": ("3d_fullres_bs2", 2)}
HIPPOCAMPUS_FOLDS = h.HIPPOCAMPUS_FOLDS   # the split: see tests/e2e_helpers.py


class Workspace:
    """nnUNet_raw / nnUNet_preprocessed / nnUNet_results under one folder and the environment for them."""

    def __init__(self, root: Path):
        from nnunet_msa.pipeline.environment import nnunet_env

        self.root = root
        # nnUNet_def_n_proc: nnU-Net's end-of-training validation spawns two pools (export, metrics) of this many
        # workers (default 8), each importing torch for a few CPU seconds: 1 is plenty for 1-3 cases.
        self.env: Dict[str, str] = nnunet_env(str(root), extra={"nnUNet_def_n_proc": "1"})
        # nnU-Net runs torch with one thread per core on CPU. With OpenMP's default active waiting, a core shared
        # with any other busy process makes every parallel region stall (a small conv2d: ~50 ms instead of ~1 ms
        # on 2 shared cores); passive waiting does not. Results are unchanged. An explicit setting is kept.
        self.env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self.raw = Path(self.env["nnUNet_raw"])
        self.preprocessed = Path(self.env["nnUNet_preprocessed"])
        self.results = Path(self.env["nnUNet_results"])
        self.logs = root / "logs"
        self.logs.mkdir(exist_ok=True)


# ------------------------------------------------------------------------------------------------ pytest-xdist
#: Test modules that share session-cached nnU-Net runs (``pipeline_runs.train``: the MSA2 fold-0 models of
#: hippocampus are trained once and used by all three). Under ``pytest -n 2`` (setup.cfg) they go to the same
#: worker; every other module is a group of its own, so its module fixtures are set up once, in one worker.
SHARED_RUN_GROUPS = {"test_e2e_pipeline": "hippocampus_msa2_runs", "test_e2e_hippocampus": "hippocampus_msa2_runs",
                     "test_e2e_explain": "hippocampus_msa2_runs"}
#: The longest groups first (seconds measured on CI's 2-core AMD EPYC, one worker, to the nearest ~50 s), so that
#: two workers finish together; the rest keep pytest's order after them.
GROUP_SECONDS = {"hippocampus_msa2_runs": 900, "test_protocol": 450, "test_e2e_upgrade": 330,
                 "test_e2e_ablation_and_plans": 330,
                 "test_e2e_architectures": 300, "test_mixed_precision": 300, "test_ablation_trainers": 240,
                 "test_e2e_other_datasets": 200, "test_architecture_options": 160, "test_demo": 150,
                 "test_benchmarks_smoke": 150, "test_compile": 110, "test_packaging": 110, "test_msa2_planner": 90,
                 "test_e2e_dependable": 70, "test_mirror_batching": 60,
                 "test_fp16_large_patch": 50}


def group_of(nodeid: str) -> str:
    """The scheduling group of a test: its module's name, or the shared group of ``SHARED_RUN_GROUPS``."""
    module = Path(nodeid.split("::", 1)[0]).stem
    return SHARED_RUN_GROUPS.get(module, module)


def pytest_collection_modifyitems(session, config, items: List[pytest.Item]) -> None:
    first_seen: Dict[str, int] = {}
    for i, item in enumerate(items):
        first_seen.setdefault(group_of(item.nodeid), i)
    # stable: within a group (and a module) pytest's order is kept, so module fixtures are set up once
    items.sort(key=lambda it: (-GROUP_SECONDS.get(group_of(it.nodeid), 0), first_seen[group_of(it.nodeid)]))


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: only called with -n
def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's loadscope scheduling with ``group_of`` as the scope (its ``loadgroup`` reads marks through a
    node-id suffix that pytest 9 no longer shows it), in collection order; a worker is given its next group only
    when one test of the current group is left."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

        def _reschedule(self, node) -> None:
            if node.shutting_down:
                return
            if not self.workqueue:
                node.shutdown()
                return
            if self._pending_of(self.assigned_work[node]) > 1:
                return
            self._assign_work_unit(node)

    return GroupScheduling(config, log)


# ------------------------------------------------------------------------------------------------ timings
TIMINGS_DIR_ENV = "NNUNET_MSA_TEST_TIMINGS_DIR"


def pytest_configure(config) -> None:
    # the controller (or a plain pytest run) picks the folder; pytest-xdist's workers inherit it
    if not hasattr(config, "workerinput"):
        os.environ[TIMINGS_DIR_ENV] = tempfile.mkdtemp(prefix="nnunet_msa_timings_")


def pytest_sessionfinish(session, exitstatus) -> None:
    folder = os.environ.get(TIMINGS_DIR_ENV)
    worker = getattr(session.config, "workerinput", {}).get("workerid", "main")
    if folder and h.TIMINGS:
        Path(folder, f"{worker}.json").write_text(json.dumps(h.TIMINGS))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    folder = os.environ.get(TIMINGS_DIR_ENV)
    timings = [t for f in sorted(Path(folder).glob("*.json")) for t in json.loads(f.read_text())] if folder else []
    if timings:
        terminalreporter.section("nnU-Net commands run by the e2e tests (wall s / CPU s incl. children)")
        for label, wall, cpu in timings:
            terminalreporter.write_line(f"{wall:8.1f} {cpu:8.1f}  {label}")
        terminalreporter.write_line(f"{sum(t[1] for t in timings):8.1f} {sum(t[2] for t in timings):8.1f}  total")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = h.shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path} (expected beside the checkout as ../shared/data, or set "
                    f"${h.SHARED_DATA_ENV})")
    return path


@pytest.fixture(scope="session")
def e2e_workspace(tmp_path_factory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("nnunet_workspace"))


def _image_sizes(images_dir: Path):
    """{case: (voxels, SimpleITK pixel type)} from the headers only."""
    import SimpleITK as sitk

    out = {}
    reader = sitk.ImageFileReader()
    for f in sorted(images_dir.glob("*.nii.gz")):
        reader.SetFileName(str(f))
        reader.ReadImageInformation()
        size = reader.GetSize()
        out[f.name[: -len("_0000.nii.gz")]] = (size[0] * size[1] * size[2], reader.GetPixelID())
    return out


@pytest.fixture(scope="session")
def hippocampus(shared_data: Path, e2e_workspace: Workspace, tmp_path_factory) -> h.Dataset:
    """Task04_Hippocampus converted with nnUNetv2_convert_MSD_dataset, planned and preprocessed for 2d and
    3d_fullres, with small-batch configurations inheriting both and a 2-fold split of the 2 smallest cases
    (``splits``; fold 0: ``train_ids`` (1 case), ``val_ids`` (1 case)).
    ``predict_ids``: fold 0's validation case and one uint8 image no training saw. Conversion, planning and
    preprocessing run once per session (``shared_build``); the rest on the worker's own copy."""
    import SimpleITK as sitk
    from nnunet_msa.pipeline.plans_edit import add_inherited_configuration, case_ids

    source = shared_data / "Task04_Hippocampus"
    assert (source / "imagesTr").is_dir() and (source / "dataset.json").is_file(), f"{source} is incomplete"

    def convert_and_preprocess(folder: Path) -> None:
        built = Workspace(folder)
        h.run(["nnUNetv2_convert_MSD_dataset", "-i", str(source), "-np", "2"], built.env,
              built.logs / "hippocampus_convert.log")
        assert (built.raw / "Dataset004_Hippocampus" / "dataset.json").is_file(), \
            "nnUNetv2_convert_MSD_dataset wrote no Dataset004_Hippocampus"
        h.run(["nnUNetv2_plan_and_preprocess", "-d", str(HIPPOCAMPUS_ID), "-c", "2d", "3d_fullres", "-np", "2",
               "-npfp", "2"],
              built.env, built.logs / "hippocampus_plan_and_preprocess.log")

    # converted, planned and preprocessed once per session (under pytest-xdist: by the first worker), then copied
    built = Workspace(built_once(tmp_path_factory, "hippocampus", convert_and_preprocess))
    ws = e2e_workspace
    env = ws.env
    for src, dst in ((built.raw, ws.raw), (built.preprocessed, ws.preprocessed), (built.logs, ws.logs)):
        copy_into(src, dst)
    raw = ws.raw / "Dataset004_Hippocampus"
    ds = h.dataset_from_raw(HIPPOCAMPUS_ID, raw, ws.preprocessed)
    for base, (name, batch) in HIPPOCAMPUS_CONFIGS.items():
        ds.configs[base] = add_inherited_configuration(str(ds.preprocessed_dir), base, name, batch)

    ids = case_ids(str(raw))
    assert len(ids) == len(list((source / "labelsTr").glob("*.nii.gz"))), "conversion lost cases"
    sizes = _image_sizes(raw / "imagesTr")
    assert set(sizes) == set(ids), "converted images and labels do not match"
    by_size = sorted(ids, key=lambda c: (sizes[c][0], c))
    ds.splits = h.write_cross_validation_split(ds.preprocessed_dir, by_size[:HIPPOCAMPUS_FOLDS], HIPPOCAMPUS_FOLDS)
    ds.train_ids, ds.val_ids = ds.splits[0]["train"], ds.splits[0]["val"]
    unseen_uint8 = [c for c in by_size[HIPPOCAMPUS_FOLDS:] if sizes[c][1] == sitk.sitkUInt8]
    assert unseen_uint8, "no uint8 image left to predict (the dataset has 55)"
    ds.predict_ids = ds.val_ids + unseen_uint8[:1]
    return ds


@pytest.fixture(scope="session")
def planned(shared_data: Path, tmp_path_factory) -> Dict[str, str]:
    """Plans (no preprocessing) of hippocampus (Dataset004) and ACDC (Dataset027) with nnU-Net's default and ResEnc M
    planners (``nnUNetv2_plan_experiment``) and both MSA2 planners (``nnunet-msa plan --no_pp``); dataset ID -> its
    preprocessed folder."""
    import os
    from nnunet_msa.pipeline.environment import nnunet_env
    from nnunet_msa.pipeline.msd import convert_command, msd_view

    def build(ws: Path) -> None:
        env = nnunet_env(str(ws))
        logs = ws / "logs"
        logs.mkdir()
        msd = msd_view(str(shared_data / "Task04_Hippocampus"), str(ws))
        h.run(convert_command(msd), env, logs / "convert.log")
        acdc = Path(env["nnUNet_raw"]) / "Dataset027_ACDC"
        acdc.mkdir(parents=True)
        for sub in ("imagesTr", "labelsTr", "dataset.json"):
            os.symlink(shared_data / "ACDC" / sub, acdc / sub)

        def plan(d: str) -> None:
            h.run(["nnUNetv2_extract_fingerprint", "-d", d, "-np", "2"], env, logs / f"fingerprint_{d}.log")
            for planner in NNUNET_PLANNERS.values():
                h.run(["nnUNetv2_plan_experiment", "-d", d, "-pl", planner], env, logs / f"plan_{d}_{planner}.log")
            for planner in MSA2_PLANNERS.values():
                h.run([h.console_script("nnunet-msa"), "plan", "-d", d, "-pl", planner, "--no_pp", "--no_pbar",
                       "-npfp", "2"], env, logs / f"plan_{d}_{planner}.log")

        # the two datasets at the same time, each in nnU-Net's order (the planners' commands are mostly
        # single-threaded start-up and planning); within a dataset nothing runs concurrently
        with ThreadPoolExecutor(max_workers=2) as pool:
            for done in [pool.submit(plan, d) for d in ("4", "27")]:
                done.result()

    # planned once per session (under pytest-xdist: by the first worker), then copied into this worker's folder
    ws = tmp_path_factory.mktemp("plans_ws")
    copy_into(built_once(tmp_path_factory, "planned", build), ws)
    env = nnunet_env(str(ws))
    return {"4": os.path.join(env["nnUNet_preprocessed"], "Dataset004_Hippocampus"),
            "27": os.path.join(env["nnUNet_preprocessed"], "Dataset027_ACDC")}
