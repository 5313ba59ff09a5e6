"""Networks, loss and mirroring axes built the way nnU-Net's trainers build them.

Both contenders are nnU-Net trainer classes: the baseline (``nnUNetTrainer``) and the MSA2 trainer
(``nnUNetTrainerMSA2`` or a subclass whose class attributes choose MSA2 options). Networks come from the class's
``build_network_architecture(plans_manager, configuration_manager, n_in, n_out, deep_supervision)``, the loss from
the class's own ``_build_loss`` (nnU-Net's DC_and_CE loss inside its DeepSupervisionWrapper, with the trainer's
weights), mirroring axes from ``configure_rotation_dummyDA_mirroring_and_inital_patch_size``. Those trainer methods
only read a few attributes, so they run on a stand-in object instead of a full trainer (which would create output
folders and log files).
"""
from __future__ import annotations

import contextlib
import io
from types import SimpleNamespace
from typing import Dict, Tuple, Type

import torch
from torch import nn

from benchmarks.workspace import PlanContext

BASELINE = "nnunet"
MSA2 = "msa2"
LABELS = {BASELINE: "nnU-Net", MSA2: "MSA2"}


def find_trainer_class(name: str) -> Type:
    """A trainer class by name: nnunet_msa's trainers, else nnU-Net's own lookup (which also searches
    ``nnUNet_extTrainer``)."""
    import nnunet_msa.training as ours

    if hasattr(ours, name):
        return getattr(ours, name)
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    with contextlib.redirect_stdout(io.StringIO()):
        return recursive_find_trainer_class_by_name(name)


def trainer_classes(baseline: str, msa2: str) -> Dict[str, Type]:
    """``{"nnunet": baseline class, "msa2": MSA2 class}``."""
    return {BASELINE: find_trainer_class(baseline), MSA2: find_trainer_class(msa2)}


def build_network(trainer_cls: Type, ctx: PlanContext, deep_supervision: bool, seed: int = 0) -> nn.Module:
    """The planned network as ``trainer_cls`` builds it (freshly initialized, seeded)."""
    torch.manual_seed(seed)
    return trainer_cls.build_network_architecture(ctx.plans_manager, ctx.configuration_manager,
                                                  ctx.num_input_channels, ctx.num_output_channels,
                                                  deep_supervision)


def _trainer_stand_in(trainer_cls: Type, ctx: PlanContext) -> SimpleNamespace:
    ns = SimpleNamespace(configuration_manager=ctx.configuration_manager, plans_manager=ctx.plans_manager,
                         label_manager=ctx.plans_manager.get_label_manager(ctx.dataset_json), is_ddp=False,
                         enable_deep_supervision=True, device=torch.device("cpu"))
    ns._do_i_compile = lambda: False
    ns.print_to_log_file = lambda *args, **kwargs: None
    ns._get_deep_supervision_scales = lambda: trainer_cls._get_deep_supervision_scales(ns)
    return ns


def build_loss(trainer_cls: Type, ctx: PlanContext) -> Tuple[nn.Module, list]:
    """The trainer's deep-supervision loss and the per-output scales of its targets (highest resolution first)."""
    ns = _trainer_stand_in(trainer_cls, ctx)
    return trainer_cls._build_loss(ns), ns._get_deep_supervision_scales()


def mirror_axes(trainer_cls: Type, ctx: PlanContext) -> Tuple[int, ...]:
    """The test-time mirroring axes the trainer stores for inference (``inference_allowed_mirroring_axes``)."""
    ns = _trainer_stand_in(trainer_cls, ctx)
    return tuple(trainer_cls.configure_rotation_dummyDA_mirroring_and_inital_patch_size(ns)[3])


def count_parameters(network: nn.Module) -> int:
    return int(sum(p.numel() for p in network.parameters()))


def build_optimizer(trainer_cls: Type, network: nn.Module) -> torch.optim.Optimizer:
    """The trainer's optimizer (``configure_optimizers``: SGD, Nesterov momentum 0.99) with nnU-Net's default
    hyperparameters (initial_lr 1e-2, weight_decay 3e-5, set in ``nnUNetTrainer.__init__``), with the MSA2
    trainers' non-finite-gradient check on its step, as in training (the stand-in is no trainer, so the mixin's
    ``super()`` cannot run: its optimizer comes from the next class that defines one)."""
    from nnunet_msa.training.nonfinite_guard import NonFiniteGuardMixin, _check_grads_before_step

    ns = SimpleNamespace(network=network, initial_lr=1e-2, weight_decay=3e-5, num_epochs=1000)
    owner = next(c for c in trainer_cls.__mro__
                 if "configure_optimizers" in vars(c) and not issubclass(c, NonFiniteGuardMixin))
    optimizer, _ = owner.configure_optimizers(ns)
    if issubclass(trainer_cls, NonFiniteGuardMixin):
        optimizer.register_step_pre_hook(_check_grads_before_step)
    return optimizer
