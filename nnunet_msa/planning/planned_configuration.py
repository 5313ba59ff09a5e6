"""Planned SACM candidates for one nnU-Net configuration, from the structure extents of the training labels: what the
MSA2 planners write into the plans they make, and (``add_planned_configuration``) into an existing plans file as a
configuration that inherits a planned one (same data, patch and encoder; the MSA2 network with planned candidates),
so that planned and fixed candidates can be compared on the same preprocessed data (``benchmarks/protocol``).
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from nnunet_msa.planning.candidate_plan import MAX_DILATION, plan_sacm_dilations
from nnunet_msa.planning.structure_extents import StructureExtents, dataset_structure_extents

MSA2_NETWORK = "nnunet_msa.network.msa2_unet.MSA2UNet"


def planned_candidates(arch_kwargs: Dict[str, Any], patch_size: Sequence[int], spacing: Sequence[float],
                       transpose_forward: Sequence[int], extents: StructureExtents,
                       max_dilation: int = MAX_DILATION) -> Tuple[List, Dict[str, Any]]:
    """(``sacm_dilations`` for ``arch_kwargs``, the structures' span written beside them as
    ``msa2_structure_extents``) of a configuration with ``patch_size`` and ``spacing`` (2 values: the 2d
    configuration, which sees slices)."""
    kind = "2d" if len(spacing) == 2 else "3d"
    lo, hi = extents.in_configuration_voxels(kind, transpose_forward, spacing)
    dilations = plan_sacm_dilations(arch_kwargs["kernel_sizes"], arch_kwargs["strides"], patch_size, lo, hi,
                                    int(arch_kwargs.get("sacm_candidates", 3)), max_dilation)
    span = {"kind": kind, "p10": [round(float(v), 2) for v in lo], "p90": [round(float(v), 2) for v in hi],
            "n_cases": extents.n_cases}
    return dilations, span


def raw_dataset_extents(raw_dataset_dir: str, slice_axis: int, max_cases: Optional[int] = 100,
                        cases: Optional[Sequence[str]] = None) -> StructureExtents:
    """Structure extents of an nnU-Net raw dataset folder's training labels, read with nnU-Net's reader; only the
    labels of ``cases`` if given (e.g. without a held-back test set's)."""
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    with open(os.path.join(raw_dataset_dir, "dataset.json")) as f:
        dataset_json = json.load(f)
    dataset = get_filenames_of_train_images_and_targets(raw_dataset_dir, dataset_json)
    if cases is not None:
        missing = sorted(set(cases) - set(dataset))
        if missing:
            raise KeyError(f"cases {missing[:5]} are not in {raw_dataset_dir}")
        dataset = {k: dataset[k] for k in cases}
    first = next(iter(dataset.values()))
    reader = determine_reader_writer_from_dataset_json(dataset_json, first["images"][0])()
    return dataset_structure_extents(dataset, reader, slice_axis, max_cases, dataset_json["labels"].get("ignore"))


def add_planned_configuration(preprocessed_dataset_dir: str, raw_dataset_dir: str, base: str, name: str,
                              batch_size: Optional[int] = None, plans_name: str = "nnUNetPlans",
                              options: Optional[Dict[str, Any]] = None,
                              max_dilation: int = MAX_DILATION,
                              cases: Optional[Sequence[str]] = None,
                              options_from_trainer: bool = False) -> Dict[str, Any]:
    """Add configuration ``name`` inheriting ``base`` of ``plans_name``: the MSA2 network (``options``, default
    ``nnUNetTrainerMSA2``'s) on the planned encoder with candidates planned from the labels of ``raw_dataset_dir``
    (only those of ``cases`` if given: a held-back test set's labels must not choose the network), and
    ``batch_size`` if given. ``options_from_trainer``: the entry gives the encoder and the planned candidates only,
    and any MSA2 trainer trains it with its own options (the accuracy protocol's configuration shared by several
    trainers); otherwise its options are the network's, and a trainer with other options refuses it. Returns the
    new configuration entry. Idempotent."""
    from nnunet_msa.network.presets import DEFAULT_PRESET, resolved_options
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    path = os.path.join(preprocessed_dataset_dir, f"{plans_name}.json")
    with open(path) as f:
        plans = json.load(f)
    if base not in plans["configurations"]:
        raise KeyError(f"configuration {base!r} is not in {path}; it has {sorted(plans['configurations'])}")
    resolved = PlansManager(plans).get_configuration(base).configuration  # inheritance resolved
    arch = resolved["architecture"]
    arch_kwargs = dict(arch["arch_kwargs"])
    if not arch["network_class_name"].endswith("MSA2UNet"):
        arch_kwargs["encoder"] = "residual" if "n_blocks_per_stage" in arch_kwargs else "plain"
    arch_kwargs.update(resolved_options(DEFAULT_PRESET) if options is None else options)
    transpose = plans["transpose_forward"]
    extents = raw_dataset_extents(raw_dataset_dir, int(transpose[0]), cases=cases)
    arch_kwargs["sacm_dilations"], span = planned_candidates(arch_kwargs, resolved["patch_size"], resolved["spacing"],
                                                             transpose, extents, max_dilation)
    if options_from_trainer:  # the encoder and the planned candidates only: each MSA2 trainer adds its options
        for key in (resolved_options(DEFAULT_PRESET) if options is None else options):
            arch_kwargs.pop(key, None)
    entry: Dict[str, Any] = {"inherits_from": base,
                             "architecture": {"network_class_name": MSA2_NETWORK, "arch_kwargs": arch_kwargs,
                                              "_kw_requires_import": arch["_kw_requires_import"]},
                             "msa2_structure_extents": span}
    if batch_size is not None:
        entry["batch_size"] = int(batch_size)
    plans["configurations"][name] = entry
    with open(path, "w") as f:
        json.dump(plans, f, indent=4)
    return entry
