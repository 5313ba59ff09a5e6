"""The package as users get it: a wheel built from the repository, installed into a separate folder, must let
nnU-Net find the trainers through ``nnunet-msa trainers-path``; ``nnunet-msa doctor`` must say what is wrong."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import e2e_helpers as h

REPO = h.REPO
COPY_IGNORE = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                     ".hypothesis", "*.pyc", "out", "nnunet_msa_demo*", ".venv", "venv")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel --no-deps --no-build-isolation`` of a copy of the repository (the build writes ``build/`` and
    ``*.egg-info`` next to the sources, which must not happen in the checkout)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(REPO, src, ignore=COPY_IGNORE, symlinks=True)
    dist = tmp / "dist"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
                           str(dist), str(src)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    wheels = list(dist.glob("nnunet_msa-*.whl"))
    assert len(wheels) == 1, f"expected one nnunet_msa wheel in {dist}: {os.listdir(dist)}"
    return wheels[0]


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The wheel installed with ``pip install --no-deps --target``."""
    target = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return target


def _env_with_pythonpath(first: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "nnUNet_extTrainer"}
    env["PYTHONPATH"] = os.pathsep.join([str(first)] + [p for p in [os.environ.get("PYTHONPATH", "")] if p])
    env.update(extra)
    return env


def _inside(path: str, folder: Path) -> bool:
    return os.path.commonpath([os.path.realpath(path), os.path.realpath(folder)]) == os.path.realpath(folder)


# ------------------------------------------------------------------------------------------------ the wheel
@pytest.mark.e2e
def test_wheel_ships_the_ext_trainers_folder(wheel) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "nnunet_msa/ext_trainers/nnunet_msa_trainers.py" in names
    assert "nnunet_msa/ext_trainers/__init__.py" in names


@pytest.mark.e2e
def test_wheel_ships_every_preset_of_plans(wheel) -> None:
    """The product presets (``plans/*.json``) and the experiments with their former names
    (``plans/experiments/*.json``)."""
    names = set(zipfile.ZipFile(wheel).namelist())
    presets = sorted(p.relative_to(REPO / "plans").as_posix() for p in (REPO / "plans").rglob("*.json"))
    assert "msa2.json" in presets
    assert "experiments/former_names.json" in presets and "experiments/msa2_denseCandidates.json" in presets
    missing = [p for p in presets if f"nnunet_msa/presets/{p}" not in names]
    assert not missing, f"presets of plans/ missing from the wheel (setup.cfg package_data?): {missing}"


@pytest.mark.e2e
def test_wheel_ships_every_module_of_the_package_and_no_data(wheel) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    source = {p.relative_to(REPO).as_posix() for p in (REPO / "nnunet_msa").rglob("*.py")
              if "__pycache__" not in p.parts}
    missing = sorted(source - names)
    assert not missing, f"modules of nnunet_msa/ missing from the wheel (setup.cfg [options] packages?): {missing}"
    data = sorted(n for n in names if n.endswith((".nii.gz", ".nii", ".png", ".pth", ".b2nd", ".npz")))
    assert not data, f"the wheel ships data files: {data}"


PROBE = r"""
import importlib, inspect, json, os, pkgutil
import nnunet_msa
from nnunet_msa.pipeline.trainers_path import trainers_path
path = trainers_path()
print(path)
out = {"path": path, "package": nnunet_msa.__file__, "ext_trainer_before": os.environ.get("nnUNet_extTrainer")}
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as find
try:
    find("nnUNetTrainerMSA2")
    out["found_without_ext_trainer"] = True
except RuntimeError:
    out["found_without_ext_trainer"] = False
os.environ["nnUNet_extTrainer"] = path
for name in ("nnUNetTrainerMSA2", "nnUNetTrainerMSA2Full", "nnUNetTrainerMSA2_budget", "nnUNetTrainerMSA2Full_budget",
             "nnUNetTrainer_budget"):
    cls = find(name)
    out[name] = {"name": cls.__name__, "file": inspect.getfile(cls)}
from nnunet_msa.network.presets import experiments_folder, presets_folder, resolved_options
out["presets_folder"] = presets_folder()
out["experiments_folder"] = experiments_folder()
out["default_options"] = resolved_options("msa2")
out["former_name_options"] = resolved_options("msa2_inputHeLightDilated")
out["modules"] = {}
for m in pkgutil.walk_packages(nnunet_msa.__path__, "nnunet_msa."):
    try:
        out["modules"][m.name] = getattr(importlib.import_module(m.name), "__file__", None)
    except Exception as e:
        out["modules"][m.name] = f"ERROR {type(e).__name__}: {e}"
import sys
out["loaded"] = {n: getattr(m, "__file__", None) for n, m in list(sys.modules.items())
                 if n == "nnunet_msa" or n.startswith("nnunet_msa.")}
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def probe(installed) -> dict:
    """One fresh process with the installed copy first on PYTHONPATH and ``nnUNet_extTrainer`` unset: prints
    ``trainers_path()``, runs nnU-Net's trainer lookup without and then with ``nnUNet_extTrainer`` set to it, and
    imports every module of the installed package."""
    proc = subprocess.run([sys.executable, "-c", PROBE], env=_env_with_pythonpath(installed),
                          cwd=str(installed.parent), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))[len("RESULT "):])
    result["printed"] = proc.stdout.splitlines()[0].strip()
    return result


@pytest.mark.e2e
def test_presets_of_the_installed_wheel_are_read_from_it(probe, installed) -> None:
    assert _inside(probe["presets_folder"], installed), probe["presets_folder"]
    assert _inside(probe["experiments_folder"], installed), probe["experiments_folder"]
    with open(REPO / "plans" / "msa2.json") as f:
        assert probe["default_options"] == json.load(f)["options"]
    # a former preset name resolves through plans/experiments/former_names.json of the installed copy
    assert probe["former_name_options"]["sacm_realization"] == "dilated"


@pytest.mark.e2e
def test_trainers_path_of_the_installed_wheel_is_inside_it(probe, installed) -> None:
    assert probe["ext_trainer_before"] is None
    assert probe["printed"] == probe["path"]
    assert _inside(probe["path"], installed), f"trainers_path() = {probe['path']}, not inside {installed}"
    assert Path(probe["path"]).name == "ext_trainers" and (Path(probe["path"]) / "nnunet_msa_trainers.py").is_file()
    assert _inside(probe["package"], installed), f"nnunet_msa imported from {probe['package']}"


@pytest.mark.e2e
def test_nnunet_finds_the_installed_trainers_through_nnunet_ext_trainer_only(probe, installed) -> None:
    assert probe["found_without_ext_trainer"] is False, "nnU-Net found the trainer without nnUNet_extTrainer"
    for name in ("nnUNetTrainerMSA2", "nnUNetTrainerMSA2Full", "nnUNetTrainerMSA2_budget", "nnUNetTrainerMSA2Full_budget",
             "nnUNetTrainer_budget"):
        assert probe[name]["name"] == name
        assert _inside(probe[name]["file"], installed), f"{name} comes from {probe[name]['file']}"


@pytest.mark.e2e
def test_every_module_of_the_installed_wheel_imports_from_it(probe, installed) -> None:
    """Catches modules left out of the wheel even where a development install would paper over them."""
    modules = probe["modules"]
    assert "nnunet_msa.ext_trainers.nnunet_msa_trainers" in modules
    failed = {n: f for n, f in modules.items() if f is None or f.startswith("ERROR")}
    assert not failed, f"modules of the installed wheel that do not import: {failed}"
    # everything of nnunet_msa that got imported (also modules the wheel lacks but a development install provides)
    outside = {n: f for n, f in probe["loaded"].items() if f is not None and not _inside(f, installed)}
    assert not outside, f"modules that import from outside the installed wheel (missing from it): {outside}"


@pytest.mark.e2e
def test_doctor_of_the_installed_wheel_rejects_another_copys_trainers(installed, tmp_path) -> None:
    """``nnunet-msa doctor`` of the installed copy with ``nnUNet_extTrainer`` pointing at the checkout's
    ``trainers/``: non-zero, naming the installed copy's folder as the fix."""
    folders = {v: str(tmp_path / v) for v in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for f in folders.values():
        os.makedirs(f)
    ext = str(installed / "nnunet_msa" / "ext_trainers")
    wrong = subprocess.run([sys.executable, "-m", "nnunet_msa.cli.main", "doctor"], cwd=str(tmp_path),
                           env=_env_with_pythonpath(installed, nnUNet_extTrainer=str(REPO / "trainers"), **folders),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert wrong.returncode != 0, wrong.stdout
    assert "nnUNet_extTrainer" in wrong.stdout and ext in wrong.stdout


# ------------------------------------------------------------------------------------------------ doctor
def _doctor(env: dict, cwd: Path) -> subprocess.CompletedProcess:
    try:
        cmd = [h.console_script("nnunet-msa"), "doctor"]
    except FileNotFoundError:
        cmd = [sys.executable, "-m", "nnunet_msa.cli.main", "doctor"]
    return subprocess.run(cmd, env=env, cwd=str(cwd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_doctor_fails_and_names_nnunet_ext_trainer_when_unset(tmp_path) -> None:
    from nnunet_msa.pipeline.environment import nnunet_env

    env = nnunet_env(str(tmp_path))
    del env["nnUNet_extTrainer"]
    proc = _doctor(env, tmp_path)
    assert proc.returncode != 0, proc.stdout
    assert "nnUNet_extTrainer" in proc.stdout


def test_doctor_passes_with_the_environment_of_nnunet_env(tmp_path) -> None:
    from nnunet_msa.pipeline.trainers_path import trainers_path
    from nnunet_msa.pipeline.environment import nnunet_env

    env = nnunet_env(str(tmp_path))
    assert trainers_path() in env["nnUNet_extTrainer"].split(os.pathsep)
    proc = _doctor(env, tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert "nnUNetTrainerMSA2" in proc.stdout


def test_doctor_suggests_our_trainer_for_a_misspelt_name(tmp_path) -> None:
    """``doctor -tr nnUNetTrainerMSA2_noBrige``: nnU-Net itself cannot find it, and doctor names the closest."""
    from nnunet_msa.pipeline.environment import nnunet_env

    proc = subprocess.run([h.console_script("nnunet-msa"), "doctor", "-tr", "nnUNetTrainerMSA2_noBrige"],
                          env=nnunet_env(str(tmp_path)), cwd=str(tmp_path), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 1, proc.stdout
    assert "nnU-Net has no trainer named nnUNetTrainerMSA2_noBrige. Did you mean nnUNetTrainerMSA2_noBridge" \
        in proc.stdout


def test_doctor_builds_the_network_from_the_plans_and_rejects_plans_msa2_cannot_use(planned) -> None:
    """``doctor -d 4 -c 2d``: builds nnUNetTrainerMSA2's network from the real plans (ok); a copy of the plans
    without ``kernel_sizes`` fails before any training, naming the missing entry; so does a missing configuration."""
    from nnunet_msa.pipeline.environment import nnunet_env

    root = Path(planned["4"]).parent.parent
    env = nnunet_env(str(root))
    plans = json.loads((Path(planned["4"]) / "nnUNetPlans.json").read_text())
    del plans["configurations"]["2d"]["architecture"]["arch_kwargs"]["kernel_sizes"]
    (Path(planned["4"]) / "BrokenForDoctorPlans.json").write_text(json.dumps(plans))

    def doctor(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([h.console_script("nnunet-msa"), "doctor", "-d", "4", *args], env=env, cwd=str(root),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    good = doctor("-c", "2d")
    assert good.returncode == 0, good.stdout
    assert "nnUNetTrainerMSA2 builds from nnUNetPlans.json [2d] of Dataset004_Hippocampus: 1 input channel(s), " \
           "3 output(s)" in good.stdout
    broken = doctor("-c", "2d", "-p", "BrokenForDoctorPlans")
    assert broken.returncode == 1 and "kernel_sizes" in broken.stdout, broken.stdout
    missing = doctor("-c", "3d_lowres_typo")
    assert missing.returncode == 1 and "has no configuration '3d_lowres_typo'" in missing.stdout, missing.stdout
