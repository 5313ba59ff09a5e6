"""The network record: what a model folder says about the MSA2 network its weights belong to.

nnU-Net rebuilds a trained network from the trainer class named in the checkpoint and the model folder's
``plans.json``; an MSA2 trainer's network also depends on the class's options, which change between versions. So
training writes the options it resolved into the configuration's entry of the plans it trains with (key
``nnunet_msa_network``), which nnU-Net copies into the model folder (``plans.json``) and into every checkpoint
(``init_args["plans"]``); building from those plans uses the record, not the class's options of the day::

    "configurations": {"2d": {..., "nnunet_msa_network": {
        "trainer": "nnUNetTrainerMSA2", "preset": "msa2", "nnunet_msa_version": "0.2.0",
        "options": {"use_bridge": true, "sacm_realization": "shared", ...}}}}   # every MSA2UNet option

``options`` holds every MSA2 option of ``MSA2UNet`` (``MSA2_OPTION_NAMES``) with the value the network was built
with (``MSA2UNet``'s default, then the plans' ``arch_kwargs``, then the class's options), so a later change of a
default in ``MSA2UNet`` itself does not change a recorded network either.
"""
from __future__ import annotations

import inspect
import json
from functools import lru_cache
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

#: the key of the record in a configuration entry of a plans file
RECORD_KEY = "nnunet_msa_network"
#: options that change memory and time only: the same weights compute the same numbers with either value
RUNTIME_OPTIONS = ("recompute", "mirror_batching")
#: options that only set the initial weights: irrelevant once trained weights are loaded
INIT_OPTIONS = ("init",)


class NetworkRecordError(ValueError):
    """A record that this version cannot build, or a conflict between a record, the plans and a trainer."""


@lru_cache(maxsize=1)
def msa2_option_names() -> Tuple[str, ...]:
    """The MSA2 options of ``MSA2UNet`` (its keyword arguments from ``use_bridge`` on; the ones before describe the
    planned encoder and come from the plans)."""
    from nnunet_msa.network.msa2_unet import MSA2UNet

    names = list(inspect.signature(MSA2UNet.__init__).parameters)
    return tuple(names[names.index("use_bridge"):])


@lru_cache(maxsize=1)
def _defaults() -> Dict[str, Any]:
    from nnunet_msa.network.msa2_unet import MSA2UNet

    params = inspect.signature(MSA2UNet.__init__).parameters
    return {n: params[n].default for n in msa2_option_names()}


def _plain(value: Any) -> Any:
    """JSON's form of a value (tuples as lists), so a record read back compares equal to one made in memory."""
    return json.loads(json.dumps(value))


def effective_options(arch_kwargs: Mapping[str, Any], class_options: Mapping[str, Any]) -> Dict[str, Any]:
    """Every MSA2 option as the network gets it: ``MSA2UNet``'s default <- the plans' ``arch_kwargs`` <- the
    trainer class's options."""
    names = msa2_option_names()
    unknown = sorted(set(class_options) - set(names))
    if unknown:
        raise NetworkRecordError(f"unknown MSA2UNet option(s) {unknown}; the options are {sorted(names)}.")
    options = dict(_defaults())
    options.update({k: v for k, v in arch_kwargs.items() if k in names})
    options.update(class_options)
    return _plain(options)


def make_record(trainer: str, preset: Optional[str], options: Mapping[str, Any], **extra: Any) -> Dict[str, Any]:
    """A record of ``options`` (from ``effective_options``) trained by ``trainer`` (preset ``preset``)."""
    from nnunet_msa import __version__

    return {"trainer": trainer, "preset": preset, "nnunet_msa_version": __version__, "options": _plain(dict(options)),
            **extra}


def record_in(configuration: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    """The record of a configuration entry (a plans dict's ``configurations[name]`` or a ``ConfigurationManager``'s
    ``configuration``), or None."""
    if not configuration:
        return None
    record = configuration.get(RECORD_KEY)
    return dict(record) if record else None


def recorded_options(record: Mapping[str, Any]) -> Dict[str, Any]:
    """The options of a record, checked against this version's ``MSA2UNet``."""
    options = dict(record.get("options") or {})
    unknown = sorted(set(options) - set(msa2_option_names()))
    if unknown:
        raise NetworkRecordError(
            f"The model was trained with nnunet-msa {record.get('nnunet_msa_version', '?')}, whose network has "
            f"option(s) {unknown} that this version ({_version()}) does not know. Install that version or a later "
            f"one (pip install 'nnunet-msa>={record.get('nnunet_msa_version', '0')}').")
    return options


def option_differences(a: Mapping[str, Any], b: Mapping[str, Any],
                       ignore: Iterable[str] = RUNTIME_OPTIONS) -> Dict[str, Tuple[Any, Any]]:
    """``{option: (value in a, value in b)}`` for every option whose values differ (``ignore``: not compared)."""
    skip = set(ignore)
    a, b = _plain(dict(a)), _plain(dict(b))
    defaults = _plain(_defaults())
    out = {}
    for k in sorted((set(a) | set(b)) - skip):
        va, vb = a.get(k, defaults.get(k)), b.get(k, defaults.get(k))
        if va != vb:
            out[k] = (va, vb)
    return out


def describe_differences(diff: Mapping[str, Tuple[Any, Any]], left: str, right: str) -> str:
    """``"sacm_realization: 'dilated' (left) vs 'shared' (right); ..."``."""
    return "; ".join(f"{k}: {va!r} ({left}) vs {vb!r} ({right})" for k, (va, vb) in diff.items())


def describe_record(record: Mapping[str, Any]) -> str:
    """``"nnUNetTrainerMSA2 (preset msa2, nnunet-msa 0.2.0; sacm_realization='shared', ...)"``: the record's
    trainer and the options in which it differs from ``MSA2UNet``'s defaults."""
    opts = dict(record.get("options") or {})
    defaults = _plain(_defaults())
    shown = ", ".join(f"{k}={v!r}" for k, v in opts.items() if k not in ("sacm_dilations",) + RUNTIME_OPTIONS
                      and v != defaults.get(k))
    origin = ", ".join(p for p in (f"preset {record['preset']}" if record.get("preset") else "",
                                   f"nnunet-msa {record.get('nnunet_msa_version', '?')}") if p)
    return f"{record.get('trainer', '?')} ({origin}; {shown or 'MSA2UNet defaults'})"


def presets_with_options(options: Mapping[str, Any], arch_kwargs: Mapping[str, Any],
                         ignore: Iterable[str] = RUNTIME_OPTIONS + INIT_OPTIONS) -> List[str]:
    """The presets whose network on these plans (``arch_kwargs``) has ``options`` (up to ``ignore``)."""
    from nnunet_msa.network.presets import all_preset_names, resolved_options

    found = []
    for name in all_preset_names():
        try:
            theirs = effective_options(arch_kwargs, resolved_options(name))
        except Exception:
            continue
        if not option_differences(theirs, options, ignore):
            found.append(name)
    return found


def _version() -> str:
    from nnunet_msa import __version__

    return __version__
