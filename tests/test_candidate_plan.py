"""Receptive fields planned from the data (issue 19): structure extents of label maps and the candidates' dilations
chosen from them, on hand-made examples whose answers are known."""
from __future__ import annotations

import numpy as np
import pytest

from nnunet_msa.planning.candidate_plan import (axis_dilations, fixed_dilations, plan_sacm_dilations,
                                                receptive_fields)
from nnunet_msa.planning.structure_extents import (LabelExtents, StructureExtents, component_extents, pick_cases,
                                                   summarize)


def _labels() -> np.ndarray:
    """(4, 10, 12): label 1 a 3×4×5 box and a single voxel, label 2 a 1×6×2 bar."""
    seg = np.zeros((4, 10, 12), dtype=np.uint8)
    seg[0:3, 1:5, 2:7] = 1
    seg[3, 9, 11] = 1
    seg[1, 2:8, 9:11] = 2
    return seg


def test_component_extents_in_mm_per_axis():
    ext = component_extents(_labels(), spacing=(2.0, 1.0, 0.5))
    assert sorted(map(tuple, ext[1].tolist())) == [(2.0, 1.0, 0.5), (6.0, 4.0, 2.5)]
    assert ext[2].tolist() == [[2.0, 6.0, 1.0]]


def test_slice_components_are_per_slice():
    """Along the slicing axis each slice's part of the box is its own component, one voxel thick."""
    ext = component_extents(_labels(), spacing=(2.0, 1.0, 0.5), slice_axis=0)
    box = [e for e in ext[1].tolist() if e[1] == 4.0]
    assert len(box) == 3 and all(e == [2.0, 4.0, 2.5] for e in box)
    assert len(ext[1]) == 4 and ext[2].tolist() == [[2.0, 6.0, 1.0]]


def test_span_and_configuration_voxels():
    """The span is the smallest p10 and largest p90 over labels; transposed as nnU-Net's data and divided by the
    configuration's spacing; the 2d configuration drops the slicing axis."""
    by_label = summarize({1: [(np.array([[2.0, 10.0, 20.0], [4.0, 20.0, 40.0]]), np.array([1.0, 1.0]))],
                          2: [(np.array([[6.0, 2.0, 8.0]]), np.array([5.0]))]})
    assert by_label[2] == LabelExtents(1, [6.0, 2.0, 8.0], [6.0, 2.0, 8.0])
    extents = StructureExtents({"3d": by_label, "2d": by_label}, slice_axis=2, n_cases=1)
    lo, hi = extents.span("3d")
    np.testing.assert_allclose(lo, [2.0, 2.0, 8.0])
    np.testing.assert_allclose(hi, [6.0, 20.0, 40.0])
    lo3, hi3 = extents.in_configuration_voxels("3d", [2, 0, 1], [2.0, 1.0, 1.0])
    np.testing.assert_allclose(lo3, [4.0, 2.0, 2.0])
    np.testing.assert_allclose(hi3, [20.0, 6.0, 20.0])
    lo2, hi2 = extents.in_configuration_voxels("2d", [2, 0, 1], [0.5, 0.5])
    np.testing.assert_allclose(lo2, [4.0, 4.0])
    np.testing.assert_allclose(hi2, [12.0, 40.0])


def test_percentiles_weight_components_by_their_voxels():
    """A label fragmented into many specks around one large structure: the structure sets both percentiles, as
    nearly all labelled voxels belong to it (unweighted, the specks would)."""
    seg = np.zeros((1, 60, 60), dtype=np.uint8)
    seg[0, 10:40, 5:45] = 1                          # 30 x 40 pixels
    seg[0, 50::3, 50::3] = 1                         # 16 isolated pixels
    extents, sizes = component_extents(seg, (1.0, 1.0, 1.0), with_sizes=True)[1]
    assert len(extents) == 17 and sorted(sizes)[-1] == 1200
    summary = summarize({1: [(extents, sizes)]})[1]
    assert summary.p10 == [1.0, 30.0, 40.0] and summary.p90 == [1.0, 30.0, 40.0]
    assert np.percentile(extents[:, 1], 90) == 1.0  # what the unweighted percentile would say


@pytest.mark.parametrize("k,lo,hi,size,K,expected", [
    (3, 12, 23, 40, 3, [1, 3, 4]),      # large structures: the top candidates meet at the cap and step apart
    (3, 5, 12, 20, 3, [1, 2, 4]),       # small to large: 3, 5, 9 voxels
    (3, 1, 4, 10, 3, [1, 2, 3]),
    (3, 0.2, 2, 7, 3, [1, 1, 1]),       # structures smaller than the kernel: every candidate is the local conv
    (3, 1, 16, 5, 3, [1, 1, 2]),        # a 5-voxel map holds receptive fields up to 5
    (3, 1, 16, 2, 3, [1, 1, 1]),        # a 2-voxel map: nothing wider than the kernel fits
    (1, 1, 16, 56, 3, [1, 1, 1]),       # an axis planned with kernel 1 stays 1
    (3, 1, 30, 100, 5, [1, 1, 2, 3, 4]),
])
def test_axis_dilations(k, lo, hi, size, K, expected):
    got = axis_dilations(k, lo, hi, size, K)
    assert got == expected
    assert got[0] == 1 and got == sorted(got) and max(got) <= 4


def test_plan_per_level_scales_the_structures():
    """One entry per skip level, highest resolution first; the span shrinks by each level's cumulative stride, so
    the candidates narrow towards the bottleneck; kernel-1 axes stay at dilation 1."""
    kernels = [[1, 3, 3], [1, 3, 3], [3, 3, 3], [3, 3, 3]]
    strides = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [1, 2, 2]]
    plan = plan_sacm_dilations(kernels, strides, [20, 160, 160], lo=[2, 8, 8], hi=[12, 64, 64], num_candidates=3)
    assert len(plan) == 3
    assert plan[0] == [[1, 1, 1], [1, 3, 3], [1, 4, 4]]  # in-plane 8 .. 64 voxels: 3, 7, 9 (capped at 4)
    assert all(c[0] == 1 for level in plan[:2] for c in level)  # kernel 1 on z at levels 0, 1
    # level 2 (1/2 x 1/4 x 1/4): z 1 .. 6 voxels on a 10-voxel map, in-plane 2 .. 16 on 40
    assert plan[2] == [[1, 1, 1], [2, 2, 2], [3, 4, 4]]
    assert receptive_fields(kernels[2], plan[2]) == [[3, 3, 3], [5, 5, 5], [7, 9, 9]]
    assert fixed_dilations(kernels, 3)[0] == [[1, 1, 1], [1, 2, 2], [1, 3, 3]]


def test_pick_cases_is_even_and_deterministic():
    cases = [f"c{i:03d}" for i in range(250)]
    picked = pick_cases(list(reversed(cases)), 100)
    assert len(picked) == 100 and picked[0] == "c000" and picked[-1] == "c249" and picked == sorted(picked)
    assert pick_cases(cases, None) == cases
