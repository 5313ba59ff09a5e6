"""nnUNetTrainerMSA2: nnU-Net's trainer with the MSA2 network on the planned encoder and SACM temperature
annealing. Everything else (data, augmentation, loss, deep supervision, validation, checkpoints) is nnU-Net's."""
from __future__ import annotations

from typing import Any, ClassVar, Dict, Optional

from torch import nn

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

from nnunet_msa.network.network_record import (NetworkRecordError, describe_differences, effective_options,
                                               make_record, record_in)
from nnunet_msa.network.presets import (DEFAULT_PRESET, all_preset_names, current_name, former_trainer_name, preset,
                                       resolved_options)
from nnunet_msa.training.network_from_plans import build_msa2_network, plans_conflicts
from nnunet_msa.training.nonfinite_guard import NonFiniteGuardMixin
from nnunet_msa.training.recorded_network import RecordedNetworkMixin
from nnunet_msa.training.seeding import SeedFromEnvironmentMixin
from nnunet_msa.training.temperature import annealed_temperature, set_sacm_temperature
from nnunet_msa.training.trainer_subclass import trainer_subclass


#: ``nnUNetTrainerMSA2``'s network options: the preset ``msa2`` (``plans/msa2.json``), chosen by the accuracy protocol
#: and the cost benchmark (README, "Results"). Every other option set is a preset of its own (``plans/``,
#: ``plans/experiments/``).
DEFAULT_OPTIONS: Dict[str, Any] = resolved_options(DEFAULT_PRESET)


class nnUNetTrainerMSA2(SeedFromEnvironmentMixin, NonFiniteGuardMixin, RecordedNetworkMixin, nnUNetTrainer):
    """``nnUNetv2_train DATASET CONFIG FOLD -tr nnUNetTrainerMSA2``.

    Class attributes (subclasses change these, never ``__init__`` arguments: nnU-Net constructs trainers with fixed
    arguments and the predictor only calls ``build_network_architecture`` on the class):
        msa2_options: ``MSA2UNet`` options overriding the plans' (default ``DEFAULT_OPTIONS``, the preset
            ``msa2``; ``trainer_from_preset`` makes the class of any preset in ``plans/``).
        tau0, anneal_fraction: SACM temperature from tau0 to 1 over that fraction of all iterations.
        anneal_temperature: False keeps τ = 1 throughout.

    A trainer name means one network for good (CHANGELOG.md); the network a model was trained with is recorded in
    its plans and model folder and rebuilt from there, whatever the class's options are later
    (``RecordedNetworkMixin``, ``network/network_record.py``).

    Beyond nnU-Net's trainer: training stops on the first non-finite loss or gradient, before the weights change,
    keeping every checkpoint (``NonFiniteGuardMixin``), and ``$nnUNetMSA_seed`` makes a run reproducible
    (``SeedFromEnvironmentMixin``).
    """

    msa2_options: ClassVar[Dict[str, Any]] = DEFAULT_OPTIONS
    #: the preset (``plans/``) whose options these are, if any (named in the network record)
    preset_name: ClassVar[Optional[str]] = DEFAULT_PRESET
    #: set on the class of a former trainer name: the current name of the same network
    renamed_to: ClassVar[Optional[str]] = None
    tau0: ClassVar[float] = 30.0
    anneal_fraction: ClassVar[float] = 0.1
    anneal_temperature: ClassVar[bool] = True

    @classmethod
    def build_network_architecture(cls, plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                                   num_input_channels: int, num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> nn.Module:
        """The network the configuration's record names (a trained model's plans), else this class's."""
        record = record_in(configuration_manager.configuration) or cls.network_record(configuration_manager)
        return build_msa2_network(configuration_manager, num_input_channels, num_output_channels,
                                  enable_deep_supervision, record=record)

    @classmethod
    def network_record(cls, configuration_manager: ConfigurationManager) -> Dict[str, Any]:
        """The record of the network this class trains on these plans; plans written for another network (an MSA2
        option both give, with other values) are refused with the conflict named."""
        arch_kwargs = configuration_manager.network_arch_init_kwargs or {}
        conflicts = plans_conflicts(arch_kwargs, cls.msa2_options)
        if conflicts:
            # the preset that agrees with the plans on the most options
            agree = {n: len(set(resolved_options(n)) & set(arch_kwargs)) for n in all_preset_names()
                     if not plans_conflicts(arch_kwargs, resolved_options(n))}
            fitting = sorted(agree, key=lambda n: -agree[n])
            hint = (f"train them with the trainer of preset {fitting[0]}: -tr {preset(fitting[0])['trainer']}"
                    if fitting else "train them with a trainer whose options they give")
            raise NetworkRecordError(
                f"These plans were written for another MSA2 network than {cls.__name__} builds "
                f"({describe_differences(conflicts, 'plans', cls.__name__)}). Either {hint}, or write plans for "
                f"this trainer's network: nnunet-msa plan -d DATASET --preset {cls.own_preset() or 'NAME'}.")
        name = cls.own_preset()
        return make_record(cls.__name__, name, effective_options(arch_kwargs, cls.msa2_options))

    @classmethod
    def own_preset(cls) -> Optional[str]:
        """``preset_name`` when this class's options are that preset's, else None (a class with its own options)."""
        name = getattr(cls, "preset_name", None)
        if name is None:
            return None
        try:
            return name if resolved_options(name) == dict(cls.msa2_options) else None
        except Exception:
            return None

    def has_sacm(self) -> bool:
        """Whether the network has SACM layers (the other architectures' trainers put other convs in its place)."""
        if not hasattr(self, "_msa2_has_sacm"):
            from nnunet_msa.blocks.sacm import SACM
            self._msa2_has_sacm = any(isinstance(m, SACM) for m in self.network.modules())
        return self._msa2_has_sacm

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self._msa2_step_in_epoch = 0

    def train_step(self, batch: dict) -> dict:
        step = getattr(self, "_msa2_step_in_epoch", 0)
        iteration = self.current_epoch * self.num_iterations_per_epoch + step
        tau = (annealed_temperature(iteration, self.num_epochs, self.num_iterations_per_epoch, self.tau0,
                                    self.anneal_fraction) if self.anneal_temperature else 1.0)
        set_sacm_temperature(self.network, tau)
        if step == 0 and self.has_sacm():
            self.print_to_log_file(f"SACM temperature: {tau:.3f}")
        self._msa2_step_in_epoch = step + 1
        return super().train_step(batch)


def trainer_from_preset(preset_name: str, module: str, base: Optional[type] = None,
                        name: Optional[str] = None) -> type:
    """The trainer class of preset ``preset_name`` (``plans/<preset_name>.json`` or ``plans/experiments/``; a former
    name resolves to the current one): named by its ``trainer`` entry, ``msa2_options`` its resolved options, its
    ``trainer_attributes`` as class attributes. ``name`` gives the class another name (a former trainer name: the
    same network, ``renamed_to`` the preset's trainer). Bind it to a module attribute of that name so nnU-Net's
    lookup (training, prediction) finds it."""
    p = preset(preset_name)
    current = current_name(preset_name)
    doc = f"{p.get('description', '')} (preset ``{current}``)"
    attributes: Dict[str, Any] = dict(msa2_options=p["options"], preset_name=current,
                                      **p.get("trainer_attributes", {}))
    if name is not None and name != p["trainer"]:
        doc = f"Former name of {p['trainer']}, building the same network. {doc}"
        attributes["renamed_to"] = p["trainer"]
    return trainer_subclass(name or p["trainer"], (base or nnUNetTrainerMSA2,), module, doc, **attributes)


def former_name_trainer(former_preset: str, module: str) -> type:
    """The trainer of a former preset name (``former_trainer_name``, e.g. ``nnUNetTrainerMSA2_v1`` of ``msa2_v1``):
    the network of the preset's current name, under the trainer name models were trained with."""
    return trainer_from_preset(former_preset, module, name=former_trainer_name(former_preset))


#: the spec-literal network (``MSA2UNet``'s own defaults; about 4x nnU-Net's FLOPs and memory)
nnUNetTrainerMSA2Full = trainer_from_preset("msa2_full", __name__)
#: the separable network: about nnU-Net's step time, a little less accurate than the default
nnUNetTrainerMSA2_fast = trainer_from_preset("msa2_fast", __name__)
#: the default network with SACM blocks and MASAG gates recomputed in backward: same numbers, less memory than
#: nnU-Net's, about 1.2x the default's step time
nnUNetTrainerMSA2_lowMemory = trainer_from_preset("msa2_lowMemory", __name__)
#: former name of nnUNetTrainerMSA2_separable_everyStage_responses (preset ``msa2_v1``, now
#: ``plans/experiments/msa2_separable_everyStage_responses.json``); kept in this module, where it was defined
nnUNetTrainerMSA2_v1 = former_name_trainer("msa2_v1", __name__)
