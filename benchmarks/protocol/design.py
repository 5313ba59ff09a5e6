"""What the protocol holds fixed: the plans it knows, their batch and epoch length, the held-back test split, and
the identity of a run (its record key)."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple

from nnunet_msa.pipeline.plans_edit import add_inherited_configuration, case_ids
from nnunet_msa.pipeline.splits import holdout_split, separator_pattern

from benchmarks.catalog import DATASETS, PLANS, PlanSpec

#: the split is drawn once with this seed; changing it starts a new protocol (new records)
SPLIT_SEED = 20261201
TEST_FRACTION = 0.25
#: cases of the training pool on which nnU-Net runs its own (logged) validation; they are not trained on
N_VALIDATION = 5
BASELINE = "nnUNetTrainer"
#: ``--trainers nnUNetTrainerMSA2+plannedRF``: the trainer on a configuration whose SACM candidates are planned from
#: the training labels (issue 19; ``nnunet_msa.planning.planned_configuration``), same data, patch and batch
PLANNED = "+plannedRF"


def split_trainer(spec: str) -> Tuple[str, bool]:
    """(trainer class name, planned candidates?) of a ``--trainers`` entry."""
    if spec.endswith(PLANNED):
        return spec[: -len(PLANNED)], True
    return spec, False


@dataclass(frozen=True)
class ProtocolPlan:
    """A plan under the protocol: batch (a configuration inheriting the planned one) and epoch length."""

    plan: PlanSpec
    batch_size: int
    iterations_per_epoch: int
    default_iterations: int
    #: (planned configuration, in-plane factor): ``plan.configuration`` is not nnU-Net's own but that one at a
    #: coarser in-plane spacing, planned by nnU-Net's planner (``nnunet_msa.pipeline.coarser_configuration``)
    derived_from: Optional[Tuple[str, float]] = None

    @property
    def configuration(self) -> str:
        return f"{self.plan.configuration}_protocol_b{self.batch_size}"

    def configuration_for(self, trainer_spec: str) -> str:
        """The configuration a ``--trainers`` entry trains (``_rf``: planned candidates)."""
        return self.configuration + ("_rf" if split_trainer(trainer_spec)[1] else "")


PROTOCOL_PLANS: Dict[str, ProtocolPlan] = {
    "hippocampus_2d": ProtocolPlan(PLANS["hippocampus_2d"], 32, 50, 1000),
    "hippocampus_3d_fullres": ProtocolPlan(PLANS["hippocampus_3d_fullres"], 2, 50, 1000),
    "acdc_2d": ProtocolPlan(PLANS["acdc_2d"], 8, 50, 1000),
    "acdc_3d_fullres": ProtocolPlan(PLANS["acdc_3d_fullres"], 2, 50, 1000),
    # ACDC's 2d plans at 3.125 mm in-plane (patch 128 x 112, five stages): what two CPU cores train in under an
    # hour; not nnU-Net's full-resolution ACDC (issue 36)
    "acdc_2d_inplane2x": ProtocolPlan(PlanSpec("acdc_2d_inplane2x", DATASETS["acdc"], "2d_inplane2x"), 8, 50, 1000,
                                      derived_from=("2d", 2.0)),
}


def prepare_protocol_data(ws: Any, pplan: ProtocolPlan) -> None:
    """Raw data, plans and the preprocessed data of ``pplan``'s configuration, by nnU-Net's commands; a derived
    configuration is added to the plans first and preprocessed alone (``nnUNetv2_preprocess -c NAME``)."""
    import sys

    from benchmarks.workspace import prepare_dataset

    dataset = pplan.plan.dataset
    if pplan.derived_from is None:
        prepare_dataset(ws, dataset, [pplan.plan.configuration], preprocess=True)
        return
    base, factor = pplan.derived_from
    prepare_dataset(ws, dataset, [base], preprocess=False)
    ws.run([sys.executable, "-m", "nnunet_msa.pipeline.coarser_configuration", str(dataset.dataset_id), "-c", base,
            "--in-plane-factor", str(factor), "--name", pplan.plan.configuration],
           f"plan_{dataset.dataset_name}_{pplan.plan.configuration}")
    prepare_dataset(ws, dataset, [pplan.plan.configuration], preprocess=True)


@dataclass(frozen=True)
class Split:
    """The held-back test set and nnU-Net's fold 0 inside the training pool."""

    train: Tuple[str, ...]
    validation: Tuple[str, ...]
    test: Tuple[str, ...]

    @property
    def digest(self) -> str:
        """Short hash of the three lists (part of every record key)."""
        text = json.dumps([list(self.train), list(self.validation), list(self.test)])
        return hashlib.sha256(text.encode()).hexdigest()[:10]


def make_split(ids: List[str], group_separator: Optional[str], n_validation: int = N_VALIDATION,
               test_fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED,
               max_test: Optional[int] = None) -> Split:
    """Test set: a quarter of the groups (patients), drawn by ``seed``; validation: the first ``n_validation``
    cases (whole groups) of the pool in a second seeded order; training: the rest of the pool. ``max_test`` keeps
    only that many test cases (tiny runs); it never moves a case into training."""
    pattern = separator_pattern(group_separator)
    pool, test = holdout_split(ids, test_fraction, pattern, seed)
    rest, validation = holdout_split(pool, min(0.5, max(n_validation, 1) / max(len(pool), 1)), pattern, seed + 1)
    if max_test is not None:
        test = test[:max_test]
    return Split(tuple(rest), tuple(validation), tuple(test))


def write_fold(preprocessed_dir: str, split: Split) -> None:
    """nnU-Net's ``splits_final.json``: every fold trains on ``split.train`` and validates on ``split.validation``
    (the protocol trains fold 0 only). The test cases are in neither list."""
    from nnunet_msa.pipeline.plans_edit import write_split

    write_split(preprocessed_dir, list(split.train), list(split.validation))


def prepare_split(raw_dir: str, preprocessed_dir: str, pplan: ProtocolPlan, max_test: Optional[int] = None,
                  max_train: Optional[int] = None, planned_candidates: bool = False,
                  max_validation: Optional[int] = None) -> Split:
    """The protocol's split of this dataset, written as nnU-Net's fold; the inherited configuration in the plans
    (and, with ``planned_candidates``, the one with SACM's candidates planned from the labels). ``max_train`` /
    ``max_validation`` (tiny runs) keep only the first that many training / validation cases; neither moves a case
    between the lists, and the test set is never touched by them."""
    split = make_split(case_ids(raw_dir), pplan.plan.dataset.group_separator, max_test=max_test)
    if max_train is not None or max_validation is not None:
        if (max_train is not None and max_train < 1) or (max_validation is not None and max_validation < 1):
            raise ValueError("max_train and max_validation must be at least 1 (nnU-Net trains on and validates "
                             "at least one case)")
        split = Split(split.train[:max_train], split.validation[:max_validation], split.test)
    write_fold(preprocessed_dir, split)
    add_inherited_configuration(preprocessed_dir, pplan.plan.configuration, pplan.configuration, pplan.batch_size)
    if planned_candidates:
        from nnunet_msa.planning.planned_configuration import add_planned_configuration

        # from the training pool's labels only: the test cases' must not choose the network
        add_planned_configuration(preprocessed_dir, raw_dir, pplan.plan.configuration,
                                  pplan.configuration_for(PLANNED), pplan.batch_size,
                                  cases=list(split.train) + list(split.validation), options_from_trainer=True)
    return split


def trainer_signature(trainer: str) -> Dict[str, Any]:
    """What defines a trainer's network and schedule, without its name: for ours the class's ``msa2_options`` and
    temperature settings. A record of ``nnUNetTrainerMSA2`` made before its default changed is therefore not taken
    for the new default, and is found again under any later name for the same options."""
    trainer, planned = split_trainer(trainer)
    if planned:
        sig = trainer_signature(trainer)
        sig["sacm_dilations"] = "planned from the labels (nnunet_msa.planning.candidate_plan)"
        return sig
    if trainer == BASELINE:
        return {"network": "nnU-Net default (PlainConvUNet / planned)"}
    import nnunet_msa.training as training

    cls = getattr(training, trainer, None)
    if cls is None:
        raise ValueError(f"unknown trainer {trainer!r}: not nnU-Net's {BASELINE} and not in nnunet_msa.training")
    sig: Dict[str, Any] = {}
    for attr in ("msa2_options", "tau0", "anneal_fraction", "anneal_temperature"):
        if hasattr(cls, attr):
            sig[attr] = getattr(cls, attr)
    return json.loads(json.dumps(sig, sort_keys=True, default=str))


#: ``MSA2UNet`` options that change memory and time, never the numbers (what backward recomputes, mirrored tiles in
#: one batch): a record made with another value of one of these is the same run, found under any of those values.
NEUTRAL_OPTIONS: Dict[str, Tuple[Any, ...]] = {"recompute": (False, True, "gates", "blocks"),
                                               "mirror_batching": (False, True)}


def _hash(sig: Dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(sig, sort_keys=True).encode()).hexdigest()[:8]


def signature_hash(trainer: str) -> str:
    return _hash(trainer_signature(trainer))


def signature_hashes(trainer: str) -> List[str]:
    """``signature_hash(trainer)`` first, then the hashes of the same signature with the neutral options
    (``NEUTRAL_OPTIONS``) it has set to their other values: the keys under which the same run may be recorded."""
    sig = trainer_signature(trainer)
    out = [_hash(sig)]
    options = sig.get("msa2_options")
    if not isinstance(options, dict):
        return out
    variants = [dict(options)]
    for name, values in NEUTRAL_OPTIONS.items():
        if name in options:
            variants = [{**v, name: value} for v in variants for value in values]
    for v in variants:
        h = _hash(json.loads(json.dumps({**sig, "msa2_options": v}, sort_keys=True, default=str)))
        if h not in out:
            out.append(h)
    return out


def trainer_names_by_signature() -> Dict[str, str]:
    """{signature hash: trainer name} of nnU-Net's default and every trainer class of ``nnunet_msa.training``
    (not the generated ``_budget``/``_Nepochs`` variants); the first name wins for equal options."""
    import re

    import nnunet_msa.training as training

    out = {signature_hash(BASELINE): BASELINE}
    for name in training.__all__:
        if name.endswith("_budget") or re.search(r"_\d+epochs$", name):
            continue
        for h in signature_hashes(name):
            out.setdefault(h, name)
    return out


@dataclass(frozen=True)
class RunKey:
    """One protocol run."""

    plan: str
    trainer: str
    iterations: int
    batch_size: int
    seed: int
    split: str
    signature: str

    @property
    def name(self) -> str:
        return f"{self.trainer}_it{self.iterations}_b{self.batch_size}_seed{self.seed}_{self.split}_{self.signature}"

    def record_path(self, results_dir: str) -> str:
        return os.path.join(results_dir, self.plan, f"{self.name}.json")

    def same_run_paths(self, results_dir: str, signatures: Optional[List[str]] = None) -> List[str]:
        """Records of the same run under any trainer name (same options, budget, batch, seed and split); with
        ``signatures`` (``signature_hashes``) also those keyed with another value of a neutral option."""
        import glob

        out: List[str] = []
        for sig in signatures or [self.signature]:
            suffix = f"_it{self.iterations}_b{self.batch_size}_seed{self.seed}_{self.split}_{sig}.json"
            out += sorted(glob.glob(os.path.join(results_dir, self.plan, f"*{suffix}")))
        return out

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def run_key(pplan: ProtocolPlan, trainer: str, iterations: int, seed: int, split: Split) -> RunKey:
    if iterations % pplan.iterations_per_epoch:
        raise ValueError(f"--iterations {iterations} must be a multiple of {pplan.iterations_per_epoch} "
                         f"(iterations per epoch of {pplan.plan.name})")
    return RunKey(pplan.plan.name, trainer, int(iterations), pplan.batch_size, int(seed), split.digest,
                  signature_hash(trainer))
