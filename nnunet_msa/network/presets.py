"""The network presets: named ``MSA2UNet`` option sets kept as plain data, one JSON per preset in the repository's
``plans/`` folder (installed as the package ``nnunet_msa.presets``). The trainers, the MSA2 planners and
``nnunet-msa plan --preset NAME`` read them here; nothing else defines an option set.

A preset file::

    {
      "trainer": "nnUNetTrainerMSA2_noBridge",           # the trainer class made from it (nnunet_msa.training)
      "network": "nnunet_msa.network.msa2_unet.MSA2UNet",
      "description": "...",
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
from typing import Any, Dict, List

#: the package the preset files are installed as (``plans/`` in the repository)
PRESET_PACKAGE = "nnunet_msa.presets"
DEFAULT_PRESET = "msa2"


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


@lru_cache(maxsize=None)
def _raw(name: str) -> Dict[str, Any]:
    path = os.path.join(presets_folder(), f"{name}.json")
    if not os.path.isfile(path):
        raise PresetError(f"no preset {name!r}; the presets are {preset_names()}")
    with open(path) as f:
        data = json.load(f)
    for key in ("trainer", "network", "options"):
        if key not in data:
            raise PresetError(f"preset {path} has no {key!r} entry")
    return data


def preset_names() -> List[str]:
    """Every preset, sorted."""
    return sorted(f[:-5] for f in os.listdir(presets_folder()) if f.endswith(".json"))


def preset(name: str) -> Dict[str, Any]:
    """The preset ``name`` with its options resolved (``extends`` applied, depth first)."""
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
