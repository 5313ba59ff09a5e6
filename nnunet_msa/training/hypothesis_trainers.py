"""The accuracy protocol's experiments (``python -m benchmarks.protocol``) as trainers: one per preset of
``plans/experiments/``, ``nnUNetTrainerMSA2_<preset without msa2_>``, each named by how its network differs from the
default's (``msa2``): the candidates (``separable``, ``denseCandidates``, ``sharedKernel``, ``splitCandidates``),
the placement (``everyStage``: bridge and MASAG in every decoder stage but the full-resolution one;
``everyStageBridge``; ``lowestStageOnly``), the fingerprint (``responses``), the initialization (``staticStart``)
and the temperature schedule (``noAnneal``).

The experiments' former names (``plans/experiments/former_names.json``) keep their trainers, each building the same
network as its current name (``FORMER_NAME_TRAINERS``; ``nnUNetTrainerMSA2_v1`` lives in ``nnunet_trainer_msa2``).
"""
from __future__ import annotations

from typing import Tuple

from nnunet_msa.network.presets import experiment_names, former_names
from nnunet_msa.training.nnunet_trainer_msa2 import former_name_trainer, nnUNetTrainerMSA2_v1, trainer_from_preset

#: one trainer per experiment preset, in the order of the preset names
EXPERIMENT_TRAINERS: Tuple[type, ...] = tuple(trainer_from_preset(p, __name__) for p in experiment_names())
#: the trainers of the experiments' former names (same networks as their current names)
FORMER_NAME_TRAINERS: Tuple[type, ...] = (nnUNetTrainerMSA2_v1,) + tuple(
    former_name_trainer(old, __name__) for old in sorted(former_names()) if old != "msa2_v1")
globals().update({t.__name__: t for t in EXPERIMENT_TRAINERS + FORMER_NAME_TRAINERS[1:]})
