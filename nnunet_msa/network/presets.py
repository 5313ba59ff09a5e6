"""The network presets: named ``MSA2UNet`` option sets kept as plain data, one JSON per preset in the repository's
``plans/`` folder (installed as the package ``nnunet_msa.presets``). The trainers, the MSA2 planners and
``nnunet-msa plan --preset NAME`` read them here; nothing else defines an option set.

Two kinds, in two folders:

- ``plans/*.json``, the product presets (``preset_names()``): the default ``msa2``, its other forms (``msa2_fast``,
  ``msa2_lowMemory``, ``msa2_full``), the ablations and the other papers' architectures;
- ``plans/experiments/*.json``, the accuracy protocol's experiments (``experiment_names()``), each named by how
  its network differs from the default's (``msa2_denseCandidates``, ``msa2_separable_everyStage``, ...).

``preset(name)`` finds both, and also a preset's former name (``plans/experiments/former_names.json``,
``{former: current}``): models record the preset they were trained with, so a name once given keeps resolving.

A preset file::

    {
      "trainer": "nnUNetTrainerMSA2_noBridge",           # the trainer class made from it (nnunet_msa.training)
      "network": "nnunet_msa.network.msa2_unet.MSA2UNet",
      "description": "...",                              # its first sentence says what the network is
      "cost": "...",                                     # optional: step time and memory against nnU-Net's default
      "extends": "msa2",                                 # optional: start from another preset's options
      "options": {"use_bridge": false},                  # MSA2UNet keyword arguments
      "trainer_attributes": {"anneal_temperature": false}  # optional: class attributes of the trainer
    }

``resolved_options(name)`` gives the full option set (``extends`` applied), which can be merged by hand into a
configuration's ``architecture.arch_kwargs`` of any ``nnUNetPlans.json`` (with ``network_class_name`` set to
``network``); ``nnunet-msa plan --preset NAME`` writes it there.
"""
from __future__ import annotations

import importlib.util
import json
import os
from functools import lru_cache
from typing import Any, Dict, List, Optional

#: the package the preset files are installed as (``plans/`` in the repository)
PRESET_PACKAGE = "nnunet_msa.presets"
DEFAULT_PRESET = "msa2"
#: the subfolder of the experiments' presets
EXPERIMENTS = "experiments"
#: ``{former preset name: current preset name}``, in the experiments' folder
FORMER_NAMES_FILE = "former_names.json"


class PresetError(ValueError):
    """A preset that does not exist or cannot be read."""


def presets_folder() -> str:
    """The folder of the preset JSON files: ``nnunet_msa/presets/`` of a wheel, ``plans/`` of a checkout (also when
    an editable install does not map the subpackage)."""
    spec = importlib.util.find_spec(PRESET_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        return os.path.abspath(list(spec.submodule_search_locations)[0])
    checkout = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "plans")
    if os.path.isfile(os.path.join(checkout, f"{DEFAULT_PRESET}.json")):
        return checkout
    raise PresetError(f"{PRESET_PACKAGE} is missing: reinstall nnunet-msa (pip install nnunet-msa).")


def experiments_folder() -> str:
    """The folder of the experiments' preset files (``plans/experiments/``)."""
    return os.path.join(presets_folder(), EXPERIMENTS)


def _names_in(folder: str) -> List[str]:
    if not os.path.isdir(folder):
        return []
    return sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".json") and f != FORMER_NAMES_FILE)


def preset_names() -> List[str]:
    """The product presets (``plans/*.json``), sorted."""
    return _names_in(presets_folder())


def experiment_names() -> List[str]:
    """The accuracy protocol's experiments (``plans/experiments/*.json``), sorted."""
    return _names_in(experiments_folder())


def all_preset_names() -> List[str]:
    """Every preset under its current name: the product presets, then the experiments."""
    return preset_names() + experiment_names()


@lru_cache(maxsize=1)
def former_names() -> Dict[str, str]:
    """``{former name: current name}`` of the presets that were renamed."""
    path = os.path.join(experiments_folder(), FORMER_NAMES_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        data = json.load(f)
    return dict(data.get("presets", data))


def current_name(name: str) -> str:
    """``name``, or the current name of a former preset name."""
    return former_names().get(name, name)


def former_names_of(name: str) -> List[str]:
    """The former names of preset ``name`` (current name), sorted."""
    return sorted(old for old, new in former_names().items() if new == name)


def former_trainer_name(former: str) -> str:
    """The trainer class of a former preset name: ``nnUNetTrainerMSA2_<name without msa2_>``, as the presets'
    trainers were named (``msa2_v1`` -> ``nnUNetTrainerMSA2_v1``). The class stays, building the same network."""
    return f"nnUNetTrainerMSA2_{former.removeprefix('msa2_')}"


def preset_trainers(name: str) -> List[str]:
    """The trainer names of preset ``name``'s network: its ``trainer`` entry, then the trainers of its former names."""
    current = current_name(name)
    return [preset(current)["trainer"]] + [former_trainer_name(old) for old in former_names_of(current)]


def is_preset(name: str) -> bool:
    """Whether ``name`` is a preset (product, experiment, or a former name of one)."""
    return _path(current_name(name)) is not None


def is_experiment(name: str) -> bool:
    """Whether preset ``name`` (or its former name) is one of the accuracy protocol's experiments."""
    return current_name(name) in experiment_names()


def _path(name: str) -> Optional[str]:
    if not name or os.sep in name or "/" in name or name == FORMER_NAMES_FILE[:-5]:
        return None
    for folder in (presets_folder(), experiments_folder()):
        path = os.path.join(folder, f"{name}.json")
        if os.path.isfile(path):
            return path
    return None


@lru_cache(maxsize=None)
def _raw(name: str) -> Dict[str, Any]:
    path = _path(current_name(name))
    if path is None:
        raise PresetError(f"no preset {name!r}; the presets are {preset_names()}, the experiments "
                          f"{experiment_names()}")
    with open(path) as f:
        data = json.load(f)
    for key in ("trainer", "network", "options"):
        if key not in data:
            raise PresetError(f"preset {path} has no {key!r} entry")
    return data


def preset(name: str) -> Dict[str, Any]:
    """The preset ``name`` (current or former name) with its options resolved (``extends`` applied, depth first)."""
    data = dict(_raw(name))
    options: Dict[str, Any] = {}
    if "extends" in data:
        options.update(preset(data["extends"])["options"])
    options.update(data["options"])
    data["options"] = options
    return data


def resolved_options(name: str) -> Dict[str, Any]:
    """The full ``MSA2UNet`` option set of preset ``name``."""
    return dict(preset(name)["options"])
