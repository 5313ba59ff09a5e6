"""What each trainer nnU-Net finds through ``nnunet-msa trainers-path`` is (``nnunet_msa.training.__all__``): its
group, what its network is, its preset and what a step costs against nnU-Net's default. ``nnunet-msa trainers``
prints it.

Everything comes from the classes and the presets' data: the first sentence of a preset's ``description``, its
``cost`` (figures from ``benchmarks/COST.md``), or ``as <preset>`` when its options are those of a preset with a
cost, else ``not measured``."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple

from nnunet_msa.network.presets import (all_preset_names, current_name, former_names_of, former_trainer_name,
                                        is_experiment, preset, resolved_options)

#: (group key, header), in the order they are listed
GROUPS: Tuple[Tuple[str, str], ...] = (
    ("product", "The default and its product forms"),
    ("ablation", "Ablations: one part of the default switched off"),
    ("architecture", "Other papers' architectures, their parts in MSA2's slots"),
    ("epochs", "Epoch variants (as nnU-Net's nnUNetTrainer_Xepochs)"),
    ("budget", "Budget variants for tests, demos and benchmarks"),
    ("experiment", "Experiments of the accuracy protocol (kept to reproduce its results; not product trainers)"),
)
BUDGET_NOTE = "epochs/iterations from nnUNetMSA_* env"
BASELINE = "nnUNetTrainer"
BASELINE_NOTE = ", nnU-Net's default trainer"


@dataclass(frozen=True)
class TrainerEntry:
    """One trainer of the listing."""

    name: str
    group: str
    what: str
    preset: Optional[str]
    cost: str
    experiment: bool

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def first_sentence(text: str) -> str:
    """``text`` up to the first full stop that a capitalized sentence follows (``eq. 1-2`` does not end one), or
    all of it."""
    text = text.strip()
    match = re.search(r"(?<=[.!?])\s+(?=[A-Z])", text)
    return text[: match.start()] if match else text


def preset_cost(name: str) -> str:
    """The ``cost`` of preset ``name``; else ``as <preset>`` of the first preset with a cost and the same options
    (product presets first); else ``not measured``."""
    own = preset(name).get("cost")
    if own:
        return own
    options = resolved_options(name)
    for other in all_preset_names():
        if other != current_name(name) and preset(other).get("cost") and resolved_options(other) == options:
            return f"as {other}"
    return "not measured"


def _former_preset(trainer: str, current: str) -> Optional[str]:
    return next((old for old in former_names_of(current) if former_trainer_name(old) == trainer), None)


def describe(name: str, cls: type, epoch_trainers: Dict[str, type], ablations: Tuple[type, ...],
             architectures: Tuple[type, ...]) -> TrainerEntry:
    """The entry of trainer class ``cls`` exported as ``name``."""
    preset_name = getattr(cls, "preset_name", None)
    current = current_name(preset_name) if preset_name else None
    experiment = bool(current) and is_experiment(current)
    cost = preset_cost(current) if current else "1x (nnU-Net's default)"
    if name.endswith("_budget"):
        base = name[: -len("_budget")]
        what = f"test budget variant of {base}{BASELINE_NOTE if base == BASELINE else ''} ({BUDGET_NOTE})"
        group = "experiment" if experiment else "budget"
    elif name in epoch_trainers:
        epochs = getattr(cls, "fixed_num_epochs", "?")
        what = f"{name.rsplit('_', 1)[0]} for {epochs} epoch{'' if epochs == 1 else 's'}"
        group = "epochs"
    else:
        renamed_to = getattr(cls, "renamed_to", None)
        if renamed_to:
            old = _former_preset(name, current)
            what = f"former name of {renamed_to}, the same network" + (f" (preset formerly {old})" if old else "")
        else:
            what = first_sentence(preset(current).get("description", "")) if current else cls.__doc__ or ""
        group = ("experiment" if experiment else "ablation" if cls in ablations
                 else "architecture" if cls in architectures else "product")
    return TrainerEntry(name, group, what, current, cost, experiment)


def _budget_after_base(entries: List[TrainerEntry]) -> List[TrainerEntry]:
    """``entries`` with each ``X_budget`` moved right after ``X`` when both are in the list."""
    names = {e.name for e in entries}
    out: List[TrainerEntry] = []
    for e in entries:
        if e.name.endswith("_budget") and e.name[: -len("_budget")] in names:
            continue
        out.append(e)
        out += [b for b in entries if b.name == f"{e.name}_budget"]
    return out


def trainer_catalog(product_only: bool = False) -> List[TrainerEntry]:
    """Every trainer of ``nnunet_msa.training.__all__`` once, grouped in the order of ``GROUPS`` (the default
    first); ``product_only`` leaves out the experiments."""
    import nnunet_msa.training as training
    from nnunet_msa.training.epoch_variants import EPOCH_TRAINERS

    entries = [describe(n, getattr(training, n), EPOCH_TRAINERS, training.ABLATION_TRAINERS,
                        training.ARCHITECTURE_TRAINERS) for n in training.__all__]
    out: List[TrainerEntry] = []
    for group, _ in GROUPS:
        if product_only and group == "experiment":
            continue
        out += _budget_after_base([e for e in entries if e.group == group])
    return out
