"""SACM's fingerprints: the statistics its gate maps to the attention π over the candidate kernels
(``docs/design.md``, "SACM: fingerprint").

``responses`` (B, 2·K·C_k): per channel, the spatial mean and std of each candidate's response conv_k(x). π then
    needs every response first, so SACM can only run in the outputs form.
``input`` (B, (K + 2)·C_in): statistics of x itself, known before any candidate runs, so that SACM can synthesize
    the per-sample kernel and run one convolution (the paper: kernels synthesized "based on the statistical
    fingerprint of the input"). Per channel c:

        μ_c, σ_c                                 spatial mean and std of x_c
        s_{k,c} = std(P_k x_c) / σ_c,  k = 1..K   P_k: mean over windows of 2^k voxels per axis (a pyramid of
                                                 2-voxel average pools, each on the previous level's grid)

    s_k is the share of x's variation that survives averaging at scale 2^k (2, 4, 8 voxels: about the candidates'
    receptive fields 3, 5, 7): near 1 where the channel varies slowly (large structures), near 0 where it varies from
    voxel to voxel. After nnU-Net's InstanceNorm μ_c and σ_c are nearly the same in every sample (the trap the spec
    names); the s_k are not: they change with the size of what a slice shows (``tests/test_sacm_fingerprint.py``
    shows π varying along the slices of real volumes). Axes planned with kernel 1 are not pooled, and an axis stops
    being pooled when its level is a single voxel. The pyramid costs one pass over x (the first pool) and passes
    over maps 2^dim times smaller; the spec's example, box means of size rf_k on x, costs K passes over x.

All statistics in float32 (or wider), population std plus eps inside the root (``fused_ops.spatial_mean_std``).
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F

from nnunet_msa.blocks.fused_ops import spatial_mean_std

_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def pyramid_window(size: Sequence[int], pooled_axes: Sequence[bool]) -> Tuple[int, ...]:
    """The next level's pooling window: 2 on pooled axes that still have 2 or more voxels, else 1."""
    return tuple(2 if p and s >= 2 else 1 for s, p in zip(size, pooled_axes))


def input_fingerprint(x: torch.Tensor, num_scales: int, pooled_axes: Sequence[bool], eps: float) -> torch.Tensor:
    """[μ, σ, s_1, ..., s_K] of x (B, C, *S) per channel: (B, (K + 2)·C) in float32 (or wider).

    ``pooled_axes``: per spatial axis, whether the pyramid averages along it (the axes SACM's candidates widen)."""
    dim = x.dim() - 2
    wide = torch.promote_types(x.dtype, torch.float32)
    x32 = x if x.dtype == wide else x.to(wide)
    with torch.autocast(device_type=x.device.type, enabled=False):
        mean, std = spatial_mean_std(x32, eps)
        feats, level, level_std = [mean, std], x32, std
        if _pool_channels_last(x32):
            level = x32.contiguous(memory_format=torch.channels_last)
        for _ in range(num_scales):
            window = pyramid_window(level.shape[2:], pooled_axes)
            if any(w > 1 for w in window):
                level = _AVG_POOL[dim](level, window, window)
                level_std = _std(level, eps)
            feats.append(level_std / std)
    return torch.cat(feats, dim=1)


def _pool_channels_last(x: torch.Tensor) -> bool:
    """Whether the pyramid pools a channels-last copy of x: on CPU in 2D without autograd (prediction), where
    PyTorch's channels-last average pool is 2-3x faster than its NCHW one, the copy included (1 thread: 1×128×28×20,
    39 µs against 128 µs; 1×32×256×224, 1.5 ms against 3.4 ms). Not in training: forward and backward it is faster
    only on small maps in isolation (32×32×56×40: 10.4 against 13.5 ms; 8×64×128×112: 77 against 47 ms), and the
    whole hippocampus 2d step at batch 32 did not change (0.739 against 0.732 s, 1 thread). Not in 3D (channels-last
    3D pooling measured 2-8x slower)."""
    return (x.dim() == 4 and x.device.type == "cpu" and not x.is_contiguous(memory_format=torch.channels_last)
            and not (torch.is_grad_enabled() and x.requires_grad))


def _std(level: torch.Tensor, eps: float) -> torch.Tensor:
    """Population std (+ eps inside the root) per (sample, channel) of a pyramid level (small maps: plain ops; two
    passes, as ``torch.var`` is 10x slower on CPU); reduced over the spatial axes in any memory format."""
    axes = tuple(range(2, level.dim()))
    return torch.sqrt((level - level.mean(dim=axes, keepdim=True)).square().mean(dim=axes) + eps)


def input_fingerprint_size(num_candidates: int, in_channels: int) -> int:
    """Length of ``input_fingerprint`` per sample."""
    return (num_candidates + 2) * in_channels
