"""nnUNetTrainerMSA2: nnU-Net's trainer with the MSA2 network on the planned encoder and SACM temperature
annealing. Everything else (data, augmentation, loss, deep supervision, validation, checkpoints) is nnU-Net's."""
from __future__ import annotations

from typing import Any, ClassVar, Dict

from torch import nn

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

from nnunet_msa.training.network_from_plans import build_msa2_network
from nnunet_msa.training.nonfinite_guard import NonFiniteGuardMixin
from nnunet_msa.training.seeding import SeedFromEnvironmentMixin
from nnunet_msa.training.temperature import annealed_temperature, set_sacm_temperature


#: The default MSA2 placement of ``nnUNetTrainerMSA2``, chosen by the benchmark (``python -m benchmarks.run``;
#: README, "Results"): SACM as depthwise candidates + pointwise (``separable``), one bridge block per skip, bridge,
#: MASAG and SACM in every decoder stage but the full-resolution one, and the SACM blocks and MASAG gates recomputed
#: in backward instead of keeping their activations. The spec-literal network (``dilated`` SACM in every decoder
#: conv, two bridge blocks on every skip, MASAG everywhere) is ``nnUNetTrainerMSA2Full``.
BALANCED_OPTIONS: Dict[str, Any] = {
    "sacm_realization": "separable",
    "n_bridge": 1,
    "bridge_stages": -1,
    "masag_stages": -1,
    "sacm_stages": -1,
    "recompute": True,
}


class nnUNetTrainerMSA2(SeedFromEnvironmentMixin, NonFiniteGuardMixin, nnUNetTrainer):
    """``nnUNetv2_train DATASET CONFIG FOLD -tr nnUNetTrainerMSA2``.

    Class attributes (subclasses change these, never ``__init__`` arguments: nnU-Net constructs trainers with fixed
    arguments and the predictor only calls ``build_network_architecture`` on the class):
        msa2_options: ``MSA2UNet`` options overriding the plans' (default ``BALANCED_OPTIONS``; a subclass
            replaces the dict, e.g. ``{**BALANCED_OPTIONS, "use_bridge": False}``).
        tau0, anneal_fraction: SACM temperature from tau0 to 1 over that fraction of all iterations.
        anneal_temperature: False keeps τ = 1 throughout.

    Beyond nnU-Net's trainer: training stops on the first non-finite loss or gradient, before the weights change,
    keeping every checkpoint (``NonFiniteGuardMixin``), and ``$nnUNetMSA_seed`` makes a run reproducible
    (``SeedFromEnvironmentMixin``).
    """

    msa2_options: ClassVar[Dict[str, Any]] = BALANCED_OPTIONS
    tau0: ClassVar[float] = 30.0
    anneal_fraction: ClassVar[float] = 0.1
    anneal_temperature: ClassVar[bool] = True

    @classmethod
    def build_network_architecture(cls, plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                                   num_input_channels: int, num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> nn.Module:
        return build_msa2_network(configuration_manager, num_input_channels, num_output_channels,
                                  enable_deep_supervision, **cls.msa2_options)

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


class nnUNetTrainerMSA2Full(nnUNetTrainerMSA2):
    """The spec-literal MSA2 network: ``MSA2UNet``'s own defaults (``dilated`` SACM, K = 3, in every decoder conv;
    two bridge blocks on every skip; MASAG in every stage; no recomputation). About 4x nnU-Net's FLOPs and memory."""

    msa2_options: ClassVar[Dict[str, Any]] = {}
