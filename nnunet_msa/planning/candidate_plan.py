"""SACM's candidate receptive fields planned from the data (issue 19): per decoder stage and per axis, dilations
chosen from how large the labelled structures are at that stage's resolution (``structure_extents``).

At skip level i (encoder stage i, resolution 1 / Π strides[:i + 1] of the patch), with the planned kernel k on an
axis and the structures spanning [lo, hi] voxels there (10th / 90th percentile of the components' extents):

    candidate 1:         dilation 1, receptive field k           (the local conv; nnU-Net's)
    candidates 2 .. K:   receptive fields spread geometrically from max(k, lo) to max(k, hi),
                         d_j = round((rf_j - 1) / (k - 1)) (halves up), at most ``max_dilation`` and at most
                         what the map holds ((k - 1)·d + 1 <= map size); made distinct where the cap leaves
                         room and hi > k (candidates that meet at the cap step back: 1, 3, 4, not 1, 4, 4)

Axes planned with kernel 1 stay at dilation 1; where the structures are no larger than the kernel at a stage, every
candidate is the local conv on that axis (the candidates then differ on the other axes, or only by their weights).
The fixed default (1, 2, ..., K on every axis with k > 1) is what ``MSA2UNet`` builds when the plans say nothing.
"""
from __future__ import annotations

import math
from typing import List, Sequence

import numpy as np

#: the largest dilation a planned candidate gets: (k - 1)·4 + 1 = 9 voxels for k = 3 (the kernel form's grid, 9×9 in
#: 2D, costs 81 taps against 49 at the fixed default's 7×7)
MAX_DILATION = 4


def axis_dilations(k: int, lo: float, hi: float, map_size: int, num_candidates: int,
                   max_dilation: int = MAX_DILATION) -> List[int]:
    """The K dilations of one axis (module docstring): planned kernel ``k``, structure span [lo, hi] and map size in
    this stage's voxels."""
    K = int(num_candidates)
    if k == 1 or K == 1:
        return [1] * K
    cap = max(1, min(int(max_dilation), (int(map_size) - 1) // (k - 1)))
    a, b = max(float(k), float(lo)), max(float(k), float(hi))
    a = min(a, b)
    out = [1]
    for j in range(2, K + 1):
        t = (j - 2) / (K - 2) if K > 2 else 1.0
        rf = a * (b / a) ** t
        out.append(int(min(cap, max(1, math.floor((rf - 1) / (k - 1) + 0.5)))))  # halves round up
    distinct = b > k  # structures wider than the kernel: spread the candidates
    for j in range(1, K):  # bottom-up: non-decreasing, distinct while the cap allows
        floor = out[j - 1] + 1 if (distinct and out[j - 1] < cap) else out[j - 1]
        out[j] = min(cap, max(out[j], floor))
    for j in range(K - 2, 0, -1):  # top-down: candidates that met at the cap step back below the next one
        if distinct and out[j] >= out[j + 1]:
            out[j] = max(out[j - 1], out[j + 1] - 1)
    return out


def stage_dilations(kernel: Sequence[int], lo: Sequence[float], hi: Sequence[float], map_size: Sequence[int],
                    num_candidates: int, max_dilation: int = MAX_DILATION) -> List[List[int]]:
    """K candidates' per-axis dilations at one skip level: [[d_1 per axis], ..., [d_K per axis]]."""
    per_axis = [axis_dilations(int(k), l, h, m, num_candidates, max_dilation)
                for k, l, h, m in zip(kernel, lo, hi, map_size)]
    return [[per_axis[a][j] for a in range(len(kernel))] for j in range(int(num_candidates))]


def plan_sacm_dilations(kernel_sizes: Sequence[Sequence[int]], strides: Sequence[Sequence[int]],
                        patch_size: Sequence[int], lo: Sequence[float], hi: Sequence[float], num_candidates: int,
                        max_dilation: int = MAX_DILATION) -> List[List[List[int]]]:
    """``sacm_dilations`` for the plans: one entry per skip level (encoder stages 0 .. n_stages - 2, highest
    resolution first, as ``kernel_sizes``), from the structure span [lo, hi] in voxels of the configuration's full
    resolution. ``kernel_sizes`` / ``strides``: the plans' per-stage lists (n_stages entries)."""
    dim = len(patch_size)
    scale = np.ones(dim)
    out = []
    for i in range(len(kernel_sizes) - 1):
        scale = scale * np.asarray(strides[i], dtype=np.float64)
        map_size = [max(1, int(p // s)) for p, s in zip(patch_size, scale)]
        out.append(stage_dilations(kernel_sizes[i], np.asarray(lo) / scale, np.asarray(hi) / scale, map_size,
                                   num_candidates, max_dilation))
    return out


def receptive_fields(kernel: Sequence[int], dilations: Sequence[Sequence[int]]) -> List[List[int]]:
    """Per candidate, its receptive field per axis: (k - 1)·d + 1."""
    return [[(int(k) - 1) * int(d) + 1 for k, d in zip(kernel, cand)] for cand in dilations]


def describe(configuration: str, arch_kwargs: dict, extents_voxels: dict) -> List[str]:
    """Printable lines: per skip level its map size, the structures' span and the candidates' receptive fields."""
    dilations = arch_kwargs.get("sacm_dilations")
    if dilations is None:
        return [f"{configuration}: fixed candidates (no sacm_dilations)"]
    lo, hi = np.asarray(extents_voxels["p10"]), np.asarray(extents_voxels["p90"])
    lines = [f"{configuration}: structures {fmt(lo)} .. {fmt(hi)} voxels (p10 .. p90 per axis, "
             f"{extents_voxels['kind']} components); SACM candidates per decoder stage:"]
    scale = np.ones(len(lo))
    for i, (kernel, dil) in enumerate(zip(arch_kwargs["kernel_sizes"], dilations)):
        scale = scale * np.asarray(arch_kwargs["strides"][i], dtype=np.float64)
        rfs = " | ".join("x".join(str(v) for v in rf) for rf in receptive_fields(kernel, dil))
        lines.append(f"  level {i} (1/{fmt(scale, 0)}): structures {fmt(lo / scale)} .. {fmt(hi / scale)}, "
                     f"receptive fields {rfs}")
    return lines


def fmt(values, digits: int = 1) -> str:
    return "x".join(f"{v:.{digits}f}" for v in np.asarray(values, dtype=np.float64))


def fixed_dilations(kernel_sizes: Sequence[Sequence[int]], num_candidates: int) -> List[List[List[int]]]:
    """The fixed default in the plans' format (for comparison and printing)."""
    return [[[j if int(k) > 1 else 1 for k in kernel] for j in range(1, num_candidates + 1)]
            for kernel in kernel_sizes[:-1]]
