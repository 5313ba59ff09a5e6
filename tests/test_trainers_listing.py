"""``nnunet-msa trainers`` (issue 35) and the experiments' presets under descriptive names: the listing shows every
trainer nnU-Net finds through ``nnunet-msa trainers-path`` once, the default first, the experiments last and marked;
it runs on a fresh install (no nnU-Net folders, no data). Every former preset name still resolves to the options of
its current name, and every former trainer name still builds the network (and has the protocol's signature) of its
current name."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

import e2e_helpers as h
import nnunet_msa.training as training
from nnunet_msa.network.presets import (all_preset_names, experiment_names, former_names, former_trainer_name,
                                        is_experiment, is_preset, preset, preset_names, preset_trainers,
                                        resolved_options)

#: the rename of issue 35: former preset name -> current (descriptive) name
RENAMED = {
    "msa2_v1": "msa2_separable_everyStage_responses",
    "msa2_inputHe": "msa2_separable_everyStage",
    "msa2_inputStatic": "msa2_separable_everyStage_staticStart",
    "msa2_inputStaticNoAnneal": "msa2_separable_everyStage_staticStart_noAnneal",
    "msa2_responsesStatic": "msa2_separable_everyStage_staticStart_responses",
    "msa2_inputStaticMasag1": "msa2_separable_everyStageBridge_staticStart",
    "msa2_inputStaticDilated": "msa2_denseCandidates_everyStage_staticStart",
    "msa2_inputStaticLight": "msa2_separable_staticStart",
    "msa2_inputHeLight": "msa2_separable",
    "msa2_inputHeLightNoAnneal": "msa2_separable_noAnneal",
    "msa2_inputHeLightDilated": "msa2_denseCandidates",
    "msa2_inputHeLightShared": "msa2_sharedKernel",
    "msa2_inputHeLightSharedNoAnneal": "msa2_sharedKernel_noAnneal",
    "msa2_lowestStage": "msa2_separable_lowestStageOnly",
    "msa2_split": "msa2_splitCandidates",
}
#: experiments added after the rename (no former name)
NEW_EXPERIMENTS = {"msa2_bottleneck", "msa2_bottleneck_K2_lowestStageOnly"}
PRODUCT_PRESETS = {"msa2", "msa2_fast", "msa2_lowMemory", "msa2_full", "msa2_noBridge", "msa2_noMASAG", "msa2_noSACM",
                   "msa2_noTempAnneal", "msa2_bridgeOnly", "attention_gate", "cbam", "fias", "qtseg", "se",
                   "selective_kernel"}
PRODUCT_FORMS = ["nnUNetTrainerMSA2", "nnUNetTrainerMSA2_fast", "nnUNetTrainerMSA2_lowMemory", "nnUNetTrainerMSA2Full"]
GROUP_ORDER = ["product", "ablation", "architecture", "epochs", "budget", "experiment"]


def _fresh_env() -> Dict[str, str]:
    """The environment of a fresh install: no nnU-Net folders, no extra trainer folder."""
    return {k: v for k, v in os.environ.items() if not k.startswith("nnUNet")}


def _run(*args: str) -> str:
    proc = subprocess.run([h.console_script("nnunet-msa"), "trainers", *args], env=_fresh_env(), cwd=str(h.REPO),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def listed() -> List[dict]:
    return json.loads(_run("--json"))


@pytest.fixture(scope="module")
def text() -> str:
    return _run()


def test_the_default_comes_first_then_its_product_forms(listed) -> None:
    assert [e["name"] for e in listed[:4]] == PRODUCT_FORMS
    assert listed[0]["preset"] == "msa2" and listed[0]["what"].startswith("The default MSA2 network")
    assert "1.8-2.2x" in listed[0]["cost"]


def test_every_exported_trainer_appears_exactly_once(listed) -> None:
    names = [e["name"] for e in listed]
    assert sorted(names) == sorted(training.__all__)
    assert len(names) == len(set(names))


def test_groups_come_in_order_and_experiments_are_marked(listed) -> None:
    groups = [e["group"] for e in listed]
    seen = list(dict.fromkeys(groups))
    assert seen == GROUP_ORDER
    assert groups == sorted(groups, key=GROUP_ORDER.index), "a group is split"
    for e in listed:
        assert e["experiment"] == (e["group"] == "experiment"), e
        assert e["what"] and e["cost"], e
    experiments = {e["name"] for e in listed if e["experiment"]}
    for old, new in RENAMED.items():
        assert {former_trainer_name(old), preset(new)["trainer"]} <= experiments
    assert "nnUNetTrainerMSA2_denseCandidates_budget" in experiments
    assert not any(e["experiment"] for e in listed if e["name"] in PRODUCT_FORMS)


def test_the_text_listing_has_one_line_per_trainer_and_marks_experiments(text) -> None:
    lines = [line for line in text.splitlines() if line.startswith("nnUNetTrainer")]
    names = [line.split()[0] for line in lines]
    assert names[0] == "nnUNetTrainerMSA2" and sorted(names) == sorted(training.__all__)
    headers = [line for line in text.splitlines() if line.startswith("== ")]
    assert headers[0].startswith("== The default") and "Experiments" in headers[-1] and len(headers) == 6
    for line, name in zip(lines, names):
        cls = getattr(training, name)
        assert ("[experiment]" in line) == is_experiment(getattr(cls, "preset_name", None) or ""), line
        assert "[preset " in line and "; cost " in line, line


def test_product_leaves_out_the_experiments() -> None:
    listed = json.loads(_run("--product", "--json"))
    assert listed[0]["name"] == "nnUNetTrainerMSA2"
    assert not any(e["experiment"] for e in listed)
    assert {e["name"] for e in listed} == {n for n in training.__all__
                                           if not is_experiment(getattr(getattr(training, n), "preset_name", None)
                                                                or "")}


# ------------------------------------------------------------------------------------------------ the presets
def test_former_names_are_the_rename_and_resolve_to_the_same_options() -> None:
    assert former_names() == RENAMED
    for old, new in RENAMED.items():
        assert is_preset(old) and is_experiment(old) and new in experiment_names()
        assert resolved_options(old) == resolved_options(new), old
        assert preset(old).get("trainer_attributes") == preset(new).get("trainer_attributes"), old
        assert preset(new)["trainer"] == f"nnUNetTrainerMSA2_{new.removeprefix('msa2_')}"
        assert former_trainer_name(old) in preset_trainers(old) == preset_trainers(new)


def test_former_trainer_names_build_the_network_of_their_current_names() -> None:
    from benchmarks.protocol.design import signature_hashes

    for old, new in RENAMED.items():
        former, current = former_trainer_name(old), preset(new)["trainer"]
        for suffix in ("", "_budget"):
            a, b = getattr(training, former + suffix), getattr(training, current + suffix)
            assert a.msa2_options == b.msa2_options, former
            assert a.anneal_temperature == b.anneal_temperature and a.tau0 == b.tau0, former
            assert signature_hashes(former + suffix) == signature_hashes(current + suffix), former
        assert getattr(training, former).renamed_to == current
        assert "Former name of" in getattr(training, former).__doc__


def test_plans_holds_the_product_presets_and_experiments_hold_the_rest() -> None:
    assert set(preset_names()) == PRODUCT_PRESETS
    assert set(experiment_names()) == set(RENAMED.values()) | NEW_EXPERIMENTS
    assert all_preset_names() == preset_names() + experiment_names()
    assert {k: v for k, v in resolved_options("selective_kernel").items() if k != "multiscale_conv"} == \
        resolved_options("msa2_v1")


def test_extends_of_a_former_name_resolves(tmp_path, monkeypatch) -> None:
    """A preset file that extends a former name (fias.json and selective_kernel.json extended ``msa2_v1``)."""
    import shutil

    from nnunet_msa.network import presets

    expected = {name: resolved_options(name) for name in ("fias", "selective_kernel")}
    copy = tmp_path / "plans"
    shutil.copytree(presets.presets_folder(), copy)
    for name in expected:
        data = json.loads((copy / f"{name}.json").read_text())
        data["extends"] = "msa2_v1"
        (copy / f"{name}.json").write_text(json.dumps(data))
    monkeypatch.setattr(presets, "presets_folder", lambda: str(copy))
    presets._raw.cache_clear()
    presets.former_names.cache_clear()
    try:
        assert presets.preset("fias")["extends"] == "msa2_v1"
        assert {name: presets.resolved_options(name) for name in expected} == expected
    finally:
        presets._raw.cache_clear()
        presets.former_names.cache_clear()


def test_descriptions_say_what_the_network_is_without_history() -> None:
    history = re.compile(r"\b20\d\d\b|issue \d+|default until|the default from|previous default", re.IGNORECASE)
    for name in all_preset_names():
        description = preset(name)["description"]
        assert not history.search(description), (name, description)
    for name in experiment_names():
        assert "Experiment (accuracy protocol)" in preset(name)["description"], name
    for name in ("msa2", "msa2_fast", "msa2_lowMemory", "msa2_full"):
        assert preset(name).get("cost"), name


def test_the_experiments_ship_in_the_package_data() -> None:
    setup = (Path(h.REPO) / "setup.cfg").read_text()
    assert re.search(r"nnunet_msa\.presets = .*experiments/\*\.json", setup)
