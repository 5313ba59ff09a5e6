"""Training-length variants, as nnU-Net's ``nnUNetTrainer_Xepochs``: ``nnUNetTrainerMSA2_{N}epochs`` for
N in ``EPOCH_VARIANTS``, generated here (module attributes, so nnU-Net's trainer lookup and its checkpoints find
them by name like hand-written classes). The SACM temperature schedule follows the shorter run (it is a fraction of
all iterations)."""
from __future__ import annotations

from typing import ClassVar, Dict, Tuple, Type

import torch

from nnunet_msa.training.nnunet_trainer_msa2 import nnUNetTrainerMSA2
from nnunet_msa.training.trainer_subclass import trainer_subclass

EPOCH_VARIANTS: Tuple[int, ...] = (1, 5, 10, 20, 50, 100, 250, 500, 2000)


class FixedEpochsMixin:
    """Sets ``num_epochs`` to the class's ``fixed_num_epochs`` after nnU-Net's ``__init__`` (the hook nnU-Net's own
    ``nnUNetTrainer_Xepochs`` use). A mixin, not a trainer, so the lookup never finds a variant without a length."""

    fixed_num_epochs: ClassVar[int]

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = self.fixed_num_epochs


def make_epoch_variant(base: Type[nnUNetTrainerMSA2], epochs: int, module: str = __name__) -> type:
    """``{base.__name__}_{epochs}epochs``: ``base`` trained for ``epochs`` epochs."""
    if epochs < 1:
        raise ValueError(f"an epoch variant needs at least 1 epoch, got {epochs}")
    name = f"{base.__name__}_{epochs}epochs"
    return trainer_subclass(name, (FixedEpochsMixin, base), module,
                            f"{base.__name__} for {epochs} epochs (nnU-Net's default is 1000).", fixed_num_epochs=epochs)


EPOCH_TRAINERS: Dict[str, type] = {}
for _n in EPOCH_VARIANTS:
    _cls = make_epoch_variant(nnUNetTrainerMSA2, _n)
    EPOCH_TRAINERS[_cls.__name__] = _cls
    globals()[_cls.__name__] = _cls
del _n, _cls
