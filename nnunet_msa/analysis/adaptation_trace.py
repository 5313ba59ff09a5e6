"""What the adaptive modules of a trained MSA2 network do on one preprocessed case: SACM's attention π over its
candidate kernels per 2D slice or 3D sliding-window patch, and MASAG's recalibration map (eq. 6) over the volume.

Observation is switched on only inside ``trace_adaptation`` (``observe_attention``); training never pays for it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nnunet_msa.blocks.masag import MASAG
from nnunet_msa.blocks.observe import observe_attention, unwrap
from nnunet_msa.blocks.sacm import SACM


@dataclass
class AdaptationTrace:
    """π of every SACM per window and MASAG maps, in the preprocessed case's voxel space (axis 0 = nnU-Net's slicing
    axis, "z").

    windows: (z0, z1, y0, y1, x0, x1)-style bounds (2 per spatial axis) of each window: one per slice for 2d models,
        one per sliding-window patch for 3d models.
    pi: layer name -> (N windows, K) attention over the candidates; rows sum to 1.
    receptive_fields: layer name -> receptive field of each candidate on its widest axis (voxels).
    attention: gate name -> (Z, Y, X) recalibration map in [0, 1] (channel mean of eq. 6's σ(·)), upsampled to the
        window and averaged where windows overlap.
    """
    windows: List[Tuple[int, ...]]
    pi: Dict[str, np.ndarray]
    receptive_fields: Dict[str, List[int]]
    attention: Dict[str, np.ndarray] = field(default_factory=dict)

    def expected_receptive_field(self, layer: str) -> np.ndarray:
        """Σ_k π_k · rf_k per window, (N,)."""
        return self.pi[layer] @ np.asarray(self.receptive_fields[layer], dtype=np.float64)

    def window_centres(self) -> np.ndarray:
        """Centre of each window along axis 0 (the slice index for 2d models), (N,)."""
        return np.array([(w[0] + w[1] - 1) / 2 for w in self.windows], dtype=np.float64)


def _total_stride(network: nn.Module) -> List[int]:
    """Product of the encoder's strides per axis: every input side must be a multiple of it."""
    strides = unwrap(network).encoder.strides
    out = [1] * len(strides[0])
    for s in strides:
        out = [a * int(b) for a, b in zip(out, s)]
    return out


def _window_starts(size: int, tile: int, step: float) -> List[int]:
    """nnU-Net's sliding-window starts along one axis (``compute_steps_for_sliding_window``)."""
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window
    return list(compute_steps_for_sliding_window((size,), (tile,), step)[0])


def trace_adaptation(network: nn.Module, data: torch.Tensor, patch_size: Sequence[int], tile_step_size: float = 0.5,
                     progress: bool = True) -> AdaptationTrace:
    """Run ``network`` (eval, deep supervision off, weights loaded) over the preprocessed case ``data`` (C, Z, Y, X)
    and record SACM π and MASAG maps.

    2d models (``len(patch_size) == 2``): one forward pass per slice ``data[:, z]`` of the whole slice, padded to at
    least the patch size and to a multiple of the network's stride (for slices no larger than the patch this is
    nnU-Net's single tile); one π per slice. 3d models: nnU-Net's sliding-window patches (step ``tile_step_size``)
    on the case padded to at least the patch size; one π per patch.
    """
    from acvl_utils.cropping_and_padding.padding import pad_nd_image
    from tqdm import tqdm

    net = unwrap(network)
    sacms = [(n, m) for n, m in net.named_modules() if isinstance(m, SACM)]
    gates = [(n, m) for n, m in net.named_modules() if isinstance(m, MASAG)]
    if not sacms:
        raise ValueError("the network has no SACM layer: explain needs a model trained with an nnUNetTrainerMSA2* "
                         "trainer that keeps SACM (not _noSACM)")
    dim = len(patch_size)
    spatial = tuple(data.shape[1:])
    stride = _total_stride(net)
    device = next(net.parameters()).device
    pis: Dict[str, list] = {n: [] for n, _ in sacms}
    att_sum = {n: np.zeros(spatial, dtype=np.float32) for n, _ in gates}
    att_count = np.zeros(spatial, dtype=np.float32)
    windows: List[Tuple[int, ...]] = []

    def record(window_shape: Sequence[int]) -> List[np.ndarray]:
        for n, m in sacms:
            pis[n].append(m.last_pi.float().cpu().numpy()[0])
        maps = []
        for n, m in gates:
            a = m.last_attention.float()
            mode = "bilinear" if a.dim() == 4 else "trilinear"
            maps.append(F.interpolate(a, size=tuple(window_shape), mode=mode, align_corners=False)[0, 0].cpu().numpy())
        return maps

    net.eval()
    with torch.no_grad(), observe_attention(net):
        if dim == 2:
            for z in tqdm(range(spatial[0]), desc="slices", disable=not progress):
                sl = data[:, z]
                padded, slicer = pad_nd_image(sl, tuple(patch_size), "constant", {"value": 0}, True, stride)
                net(padded[None].to(device))
                maps = record(padded.shape[1:])
                inner = tuple(slicer[1:])
                for (n, _), a in zip(gates, maps):
                    att_sum[n][z] += a[inner]
                att_count[z] += 1
                windows.append((z, z + 1, 0, spatial[1], 0, spatial[2]))
        else:
            padded, slicer = pad_nd_image(data, tuple(patch_size), "constant", {"value": 0}, True, None)
            pshape = padded.shape[1:]
            big_sum = {n: np.zeros(pshape, dtype=np.float32) for n, _ in gates}
            big_count = np.zeros(pshape, dtype=np.float32)
            starts = [_window_starts(s, p, tile_step_size) for s, p in zip(pshape, patch_size)]
            boxes = [(a, b, c) for a in starts[0] for b in starts[1] for c in starts[2]]
            offset = [s.start or 0 for s in slicer[1:]]
            for a, b, c in tqdm(boxes, desc="patches", disable=not progress):
                box = tuple(slice(o, o + p) for o, p in zip((a, b, c), patch_size))
                net(padded[(slice(None), *box)][None].to(device))
                maps = record(patch_size)
                for (n, _), m in zip(gates, maps):
                    big_sum[n][box] += m
                big_count[box] += 1
                lo = [max(0, o - off) for o, off in zip((a, b, c), offset)]
                hi = [min(s, o + p - off) for o, p, off, s in zip((a, b, c), patch_size, offset, spatial)]
                windows.append((lo[0], hi[0], lo[1], hi[1], lo[2], hi[2]))
            inner = tuple(slicer[1:])
            att_count = big_count[inner]
            for n in att_sum:
                att_sum[n] = big_sum[n][inner]
    attention = {n: att_sum[n] / np.maximum(att_count, 1) for n in att_sum}
    return AdaptationTrace(windows=windows, pi={n: np.stack(v) for n, v in pis.items()},
                           receptive_fields={n: list(m.receptive_fields) for n, m in sacms}, attention=attention)


def area_per_window(segmentation: np.ndarray, windows: Sequence[Tuple[int, ...]], labels: Sequence[int],
                    pixel_area: float) -> Dict[int, np.ndarray]:
    """Mean cross-section area (mm²) of each label over the slices of each window, inside the window: label ->
    (N,). For 2d windows (one slice, whole plane) this is the label's area on that slice."""
    out = {}
    for label in labels:
        mask = segmentation == label
        values = []
        for w in windows:
            part = mask[w[0]:w[1], w[2]:w[3], w[4]:w[5]]
            values.append(part.sum() / max(1, w[1] - w[0]) * pixel_area)
        out[int(label)] = np.asarray(values, dtype=np.float64)
    return out


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's ρ of two equally long series; NaN when either is constant (no ranking to correlate)."""
    from scipy.stats import spearmanr

    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)
