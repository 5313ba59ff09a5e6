"""A trainer name means one network for good (issue 32): every trainer this package ships builds, on plans that give
no MSA2 option, the network ``tests/trainer_networks.json`` froze for it. Changing a default therefore fails here;
the new network gets a new name (and the version and CHANGELOG.md say so), the old name keeps its network. Options
that change memory and time only (``recompute``, ``mirror_batching``) may change."""
from __future__ import annotations

import json
from pathlib import Path

import nnunet_msa.training as training
from nnunet_msa.network.network_record import RUNTIME_OPTIONS, effective_options, option_differences

FROZEN = json.loads((Path(__file__).parent / "trainer_networks.json").read_text())["trainers"]


def _ours():
    return {n: c for n in dir(training) if n.startswith("nnUNetTrainer")
            for c in [getattr(training, n)] if isinstance(c, type) and hasattr(c, "msa2_options")}


def test_every_frozen_name_still_builds_its_network() -> None:
    ours = _ours()
    gone = sorted(set(FROZEN) - set(ours))
    assert not gone, f"trainer names removed (models trained with them could no longer be loaded): {gone}"
    changed = {n: option_differences(FROZEN[n], effective_options({}, ours[n].msa2_options), RUNTIME_OPTIONS)
               for n in FROZEN}
    changed = {n: d for n, d in changed.items() if d}
    assert not changed, (f"these names now build another network: {changed}. Give the new network a new name "
                         f"(and keep the old one), bump the version, and say it in CHANGELOG.md.")


def test_every_trainer_is_frozen() -> None:
    new = sorted(set(_ours()) - set(FROZEN))
    assert not new, f"add the new trainer(s) {new} to tests/trainer_networks.json (their networks are now fixed)"
