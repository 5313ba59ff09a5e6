"""A trained model is never lost to an upgrade: the trainer records its network in the plans it trains with, and
a model folder is always rebuilt with the network it records (``network/network_record.py``).

``RecordedNetworkMixin.initialize`` (before nnU-Net builds the network) settles which network this run builds:

- the plans given carry a record (a trainer rebuilt from a checkpoint's plans): that one;
- else the class's options on these plans, refused when the plans were written for another network (an MSA2 option
  that both give differently: ``nnunet-msa plan --preset X`` plans trained with another preset's trainer);
- the model folder (``output_folder_base/plans.json``) already records a network and it differs: a fold that has
  finished (``--val``, ``--c`` of a finished fold) is rebuilt with the recorded network; training (a new fold,
  ``--c`` of an unfinished one) is refused with both networks named, unless ``nnUNetMSA_network=recorded`` asks to
  train the recorded one (so that the folds stay one model);
- a model folder with trained folds but no record (trained before nnunet-msa 0.2.0) is refused for training until
  ``nnunet-msa record-network`` has recorded its network.

The settled record goes into the trainer's plans, which nnU-Net writes into the model folder (``plans.json``, in
``on_train_start``) and into every checkpoint (``init_args["plans"]``), where ``nnUNetv2_predict``, export and
install find it.
"""
from __future__ import annotations

import glob
import json
import os
import time
from typing import Any, Dict, Optional

from nnunet_msa.network.network_record import (RECORD_KEY, NetworkRecordError, describe_differences,
                                               describe_record, option_differences, record_in)

#: ``nnUNetMSA_network=recorded``: train (a new fold, ``--c``) the network the model folder records even where the
#: trainer class builds another one today
NETWORK_ENV = "nnUNetMSA_network"
CHECKPOINTS = ("checkpoint_final.pth", "checkpoint_latest.pth", "checkpoint_best.pth")


def folder_record(model_folder: str, configuration: str) -> Optional[Dict[str, Any]]:
    """The record in ``model_folder/plans.json`` for ``configuration``, or None (no file, no record)."""
    path = os.path.join(model_folder, "plans.json")
    for attempt in range(20):
        if not os.path.isfile(path):
            return None
        try:
            with open(path) as f:
                plans = json.load(f)
            return record_in(plans.get("configurations", {}).get(configuration))
        except json.JSONDecodeError:  # another fold of this model (run at the same time) is writing it
            if attempt == 19:
                raise
            time.sleep(0.25)
    return None


def trained_folds(model_folder: str) -> list:
    """The ``fold_*`` folders of a model folder that hold a checkpoint."""
    return sorted(d for d in glob.glob(os.path.join(model_folder, "fold_*"))
                  if any(os.path.isfile(os.path.join(d, c)) for c in CHECKPOINTS))


class RecordedNetworkMixin:
    """Mixin for an MSA2 ``nnUNetTrainer`` whose class has ``network_record(configuration_manager)`` (module
    docstring)."""

    def initialize(self) -> None:
        if not self.was_initialized:
            self._settle_network_record()
        super().initialize()

    def _settle_network_record(self) -> None:
        cm = self.configuration_manager
        given = record_in(cm.configuration)
        chosen = given or type(self).network_record(cm)
        folder = folder_record(self.output_folder_base, self.configuration_name)
        if folder is None and given is None:
            self._refuse_unrecorded_folder()
        if folder is not None and given is None:
            diff = option_differences(folder["options"], chosen["options"])
            if diff:
                finished = os.path.isfile(os.path.join(self.output_folder, "checkpoint_final.pth"))
                if finished or os.environ.get(NETWORK_ENV, "").strip().lower() == "recorded":
                    self.print_to_log_file(
                        f"This model folder records the network {describe_record(folder)}; "
                        f"{type(self).__name__} builds another one in this version "
                        f"({describe_differences(diff, 'recorded', 'today')}). Using the recorded network.",
                        also_print_to_console=True)
                    chosen = folder
                else:
                    raise NetworkRecordError(
                        f"{self.output_folder_base} holds a model of another network than "
                        f"{type(self).__name__} builds in this version: recorded {describe_record(folder)}; today "
                        f"{describe_record(chosen)} ({describe_differences(diff, 'recorded', 'today')}). Training "
                        f"fold {self.fold} here would mix two networks in one model. To train the recorded network "
                        f"(the folds stay one model): {NETWORK_ENV}=recorded nnUNetv2_train ... (same arguments). "
                        f"To train today's network: another nnUNet_results folder, or plans of another name.")
        self.plans_manager.plans["configurations"][self.configuration_name][RECORD_KEY] = chosen
        cm.configuration[RECORD_KEY] = chosen

    def _refuse_unrecorded_folder(self) -> None:
        """A model folder whose folds were trained before records existed: its network is unknown, so a new
        training there could mix two networks."""
        if not os.path.isfile(os.path.join(self.output_folder_base, "plans.json")):
            return
        if os.path.isfile(os.path.join(self.output_folder, "checkpoint_final.pth")):
            return  # --val, --c of a finished fold: loading its weights strictly checks that they fit
        folds = trained_folds(self.output_folder_base)
        if folds and (len(folds) > 1 or os.path.abspath(folds[0]) != os.path.abspath(self.output_folder)):
            raise NetworkRecordError(
                f"{self.output_folder_base} holds trained folds ({', '.join(os.path.basename(f) for f in folds)}) "
                f"but does not record their network (trained before nnunet-msa 0.2.0). Record it once, then run "
                f"this command again: nnunet-msa record-network {self.output_folder_base}")
