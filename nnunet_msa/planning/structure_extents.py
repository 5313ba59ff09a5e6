"""How large the labelled structures of a dataset are, per axis: the data fingerprint the MSA2 planners add to
nnU-Net's (issue 19), from which ``candidate_plan`` chooses SACM's candidate receptive fields per decoder stage.

For every training label map, every connected component of every foreground label (face connectivity) gives its
bounding-box extent per axis in mm (voxels × the case's spacing). Two kinds of components:

    "3d"   components in the volume (what a 3d configuration's patch shows)
    "2d"   components of each slice along the axis nnU-Net's 2d configuration slices (``transpose_forward[0]``)

Per kind and label the 10th and 90th percentile of the extents per axis summarize the structures: small ones (or
the thin end of large ones) and large ones. The percentiles weight each component by its voxels (the extent of the
structure an average labelled voxel belongs to): fragmented labels (tumour sub-regions, noisy masks) have many
components of a few voxels, which unweighted percentiles would take for the structures' size. Extents are in the label files' axis order; ``in_configuration_voxels``
transposes them as nnU-Net transposes its data and divides by the configuration's spacing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
from scipy import ndimage

KINDS = ("3d", "2d")
PERCENTILES = (10.0, 90.0)


def component_extents(seg: np.ndarray, spacing: Sequence[float], slice_axis: Optional[int] = None,
                      with_sizes: bool = False):
    """{label: (n_components, ndim) extents in mm} of the foreground labels of ``seg`` (ndim spatial axes, integer
    labels, 0 background). ``slice_axis``: components of each slice along that axis (their extent on it is one
    voxel), else components in the whole array. ``with_sizes``: {label: (extents, voxels per component)}."""
    seg = np.asarray(seg)
    structure = ndimage.generate_binary_structure(seg.ndim, 1)
    if slice_axis is not None:
        keep = [slice(None)] * seg.ndim
        keep[slice_axis] = 1
        only_in_slice = np.zeros_like(structure)
        only_in_slice[tuple(keep)] = structure[tuple(keep)]
        structure = only_in_slice
    out: dict = {}
    spacing = np.asarray(spacing, dtype=np.float64)
    for label in np.unique(seg):
        if label <= 0:
            continue
        components, n = ndimage.label(seg == label, structure=structure)
        boxes = ndimage.find_objects(components, max_label=n)
        extents = np.array([[s.stop - s.start for s in box] for box in boxes], dtype=np.float64) * spacing
        sizes = np.bincount(components.ravel(), minlength=n + 1)[1:].astype(np.float64)
        out[int(label)] = (extents, sizes) if with_sizes else extents
    return out


def weighted_percentiles(values: np.ndarray, weights: np.ndarray, q: Sequence[float]) -> np.ndarray:
    """Percentiles ``q`` (0-100) per column of ``values`` (n, d), each row weighted: the smallest value whose
    cumulative weight reaches q % of the total (equal weights: numpy's "inverted_cdf" percentile)."""
    out = np.empty((len(q), values.shape[1]))
    for a in range(values.shape[1]):
        order = np.argsort(values[:, a], kind="stable")
        cum = np.cumsum(weights[order])
        for i, qq in enumerate(q):
            idx = min(int(np.searchsorted(cum, qq / 100.0 * cum[-1] - 1e-9 * cum[-1])), len(order) - 1)
            out[i, a] = values[order[idx], a]
    return out


@dataclass
class LabelExtents:
    """Percentiles (mm per axis, label-file axis order) of one label's component extents of one kind."""

    n_components: int
    p10: List[float]
    p90: List[float]


@dataclass
class StructureExtents:
    """{kind: {label: LabelExtents}}, with the slicing axis of the "2d" kind and the number of cases read."""

    by_kind: Dict[str, Dict[int, LabelExtents]]
    slice_axis: int
    n_cases: int
    axes_order: str = field(default="label files")

    def span(self, kind: str) -> tuple:
        """(smallest p10, largest p90) over the labels, per axis, mm: the range the candidates should cover."""
        labels = list(self.by_kind[kind].values())
        if not labels:
            raise ValueError(f"no foreground component of kind {kind!r}: the training labels are empty")
        lo = np.min([e.p10 for e in labels], axis=0)
        hi = np.max([e.p90 for e in labels], axis=0)
        return lo, hi

    def in_configuration_voxels(self, kind: str, transpose_forward: Sequence[int], spacing: Sequence[float]) -> tuple:
        """The span in voxels of a configuration: transposed as nnU-Net's data, divided by its spacing (3 values
        for 3d configurations; for the 2d configuration's 2 values the slicing axis, first after transposing, is
        dropped)."""
        lo, hi = (np.asarray(v, dtype=np.float64)[list(transpose_forward)] for v in self.span(kind))
        spacing = np.asarray(spacing, dtype=np.float64)
        if len(spacing) == len(lo) - 1:
            lo, hi = lo[1:], hi[1:]
        return lo / spacing, hi / spacing

    def to_json(self) -> dict:
        return {"slice_axis": self.slice_axis, "n_cases": self.n_cases,
                "by_kind": {k: {str(l): vars(e) for l, e in v.items()} for k, v in self.by_kind.items()}}


def summarize(extents: Dict[int, List[tuple]]) -> Dict[int, LabelExtents]:
    """Voxel-weighted percentiles per label of the stacked component extents; ``extents``: label -> list of
    (extents (n, d), voxels (n,)) parts. Labels without a component are left out."""
    out = {}
    for label, parts in sorted(extents.items()):
        parts = [p for p in parts if len(p[0])]
        if not parts:
            continue
        values = np.concatenate([p[0] for p in parts], axis=0)
        weights = np.concatenate([p[1] for p in parts])
        p10, p90 = weighted_percentiles(values, weights, PERCENTILES)
        out[label] = LabelExtents(int(len(values)), [float(v) for v in p10], [float(v) for v in p90])
    return out


def pick_cases(cases: Sequence[str], max_cases: Optional[int]) -> List[str]:
    """All cases, or ``max_cases`` of them spread evenly over the sorted list (deterministic)."""
    cases = sorted(cases)
    if max_cases is None or len(cases) <= max_cases:
        return cases
    index = np.linspace(0, len(cases) - 1, max_cases).round().astype(int)
    return [cases[i] for i in sorted(set(index))]


def dataset_structure_extents(dataset: Dict[str, dict], reader, slice_axis: int,
                              max_cases: Optional[int] = 100, ignore_label: Optional[int] = None) -> StructureExtents:
    """Extents of the training labels of an nnU-Net raw dataset (``get_filenames_of_train_images_and_targets``'
    dict, case -> {"label": path, ...}) read with nnU-Net's reader for the dataset (``reader.read_seg`` gives
    (1, *spatial) and the spacing, in nnU-Net's axis order). ``slice_axis``: the axis the 2d configuration slices
    (``transpose_forward[0]``). At most ``max_cases`` label files are read (evenly picked; None: all).
    ``ignore_label``: nnU-Net's ignore label (unannotated voxels), not a structure."""
    collected: Dict[str, Dict[int, List[tuple]]] = {k: {} for k in KINDS}
    picked = pick_cases(list(dataset), max_cases)
    for case in picked:
        seg, props = reader.read_seg(dataset[case]["label"])
        volume = np.asarray(seg[0])
        if ignore_label is not None:
            volume = np.where(volume == ignore_label, 0, volume)
        for kind, axis in (("3d", None), ("2d", slice_axis)):
            for label, part in component_extents(volume, props["spacing"], axis, with_sizes=True).items():
                collected[kind].setdefault(label, []).append(part)
    return StructureExtents({k: summarize(v) for k, v in collected.items()}, int(slice_axis), len(picked))
