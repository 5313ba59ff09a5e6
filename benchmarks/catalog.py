"""The datasets and plans the benchmark knows, and parsing of the ``--plans`` selection."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset of ``../shared/data`` and how it becomes an nnU-Net raw dataset.

    kind "msd": converted with ``nnUNetv2_convert_MSD_dataset``; kind "raw": already nnU-Net raw layout, linked.
    ``group_separator``: cases whose identifiers share the part before it belong together (ACDC: one patient's
    frames) and are never split between training and validation."""

    key: str
    dataset_id: int
    dataset_name: str
    source_folder: str
    kind: str
    group_separator: Optional[str] = None


DATASETS: Dict[str, DatasetSpec] = {
    "hippocampus": DatasetSpec("hippocampus", 4, "Dataset004_Hippocampus", "Task04_Hippocampus", "msd"),
    "acdc": DatasetSpec("acdc", 27, "Dataset027_ACDC", "ACDC", "raw", group_separator="_frame"),
}

CONFIGURATIONS: Tuple[str, ...] = ("2d", "3d_fullres")


@dataclass(frozen=True)
class PlanSpec:
    """One benchmarked plan: a dataset and one of its nnU-Net configurations."""

    name: str
    dataset: DatasetSpec
    configuration: str


PLANS: Dict[str, PlanSpec] = {
    f"{d}_{c}": PlanSpec(f"{d}_{c}", spec, c) for d, spec in DATASETS.items() for c in CONFIGURATIONS
}
DEFAULT_PLANS: Tuple[str, ...] = ("hippocampus_2d", "hippocampus_3d_fullres", "acdc_2d", "acdc_3d_fullres")


def parse_plans(selection: str) -> List[PlanSpec]:
    """``"hippocampus_2d,acdc_3d_fullres"`` (or ``"all"``) -> plan specs, in the order given, without duplicates."""
    names = list(DEFAULT_PLANS) if selection.strip() in ("", "all") else [
        s.strip() for s in selection.split(",") if s.strip()]
    unknown = [n for n in names if n not in PLANS]
    if unknown:
        raise ValueError(f"unknown plan(s) {unknown}; choose from {sorted(PLANS)} (comma separated) or 'all'")
    return [PLANS[n] for n in dict.fromkeys(names)]
