"""QTSeg's multi-level feature distribution (MLFD; Tran et al., "QTSeg", Sec. III-C, eq. 5-7), generalized from
three 2D levels to the N levels of any nnU-Net encoder, 2D or 3D.

For encoder outputs S_0 (highest resolution) ... S_{N-1} (bottleneck) with C_i channels, level i becomes

    SF_i = Concat_j( PROJ(S_i) if j = i,  DOWN_{j->i}(S_j) if j < i,  UP_{j->i}(S_j) if j > i )     (eq. 5-7)

with C_i channels again: half (⌊C_i / 2⌋) from PROJ, the rest split as evenly as possible over the other N - 1
levels (the paper's 2:1:1 for N = 3; the nearest levels get the remainder). PROJ is a 1x1 conv; DOWN is conv ->
norm -> SiLU, UP transposed conv -> norm -> SiLU, as in the paper, with kernel = stride = the encoder's stride between
adjacent levels. Further levels need a larger factor; a conv whose kernel were the whole factor would have
factor^3·C weights in 3D (4096·C for 16x16x16), so DOWN first average-pools by the factor minus its last step and UP
upsamples (nearest) by the factor minus its first step: adjacent levels are exactly the paper's blocks. The norm is
the plans' (the paper's BatchNorm), the nonlinearity SiLU as in the paper.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple, Type

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.conv import _ConvNd

from dynamic_network_architectures.building_blocks.helper import get_matching_convtransp, get_matching_pool_op

from nnunet_msa.blocks.norm_act import make_norm
from nnunet_msa.blocks.geometry import as_per_axis, conv_dim


def channel_shares(channels: int, n_levels: int, own: int) -> List[int]:
    """Channels level ``own`` takes from each level: ⌊C/2⌋ from itself, the rest split over the others, the
    nearest first when it does not divide. Sums to ``channels``."""
    if n_levels == 1:
        return [channels]
    mine = channels // 2
    rest = channels - mine
    others = sorted((j for j in range(n_levels) if j != own), key=lambda j: (abs(j - own), j))
    shares = [0] * n_levels
    shares[own] = mine
    for rank, j in enumerate(others):
        shares[j] = rest // (n_levels - 1) + (1 if rank < rest % (n_levels - 1) else 0)
    return shares


class _Down(nn.Module):
    """(B, C_j, *S_j) -> (B, c, *S_i): avg-pool by ``pre`` -> conv(kernel = stride = ``last``) -> norm -> SiLU."""

    def __init__(self, conv_op, c_in, c_out, pre: Tuple[int, ...], last: Tuple[int, ...], norm_op, norm_kwargs):
        super().__init__()
        self.pool = get_matching_pool_op(conv_op, pool_type="avg")(pre, pre) if math.prod(pre) > 1 else nn.Identity()
        self.conv = conv_op(c_in, c_out, last, last, bias=False)
        self.norm = make_norm(norm_op, c_out, norm_kwargs)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        return self.act(self.norm(self.conv(self.pool(x))))


class _Up(nn.Module):
    """(B, C_j, *S_j) -> (B, c, *S_i): transposed conv(kernel = stride = ``first``) -> norm -> SiLU -> nearest
    upsampling to the target size (norm and SiLU commute with nearest upsampling; cheaper before it)."""

    def __init__(self, conv_op, c_in, c_out, first: Tuple[int, ...], norm_op, norm_kwargs):
        super().__init__()
        self.conv = get_matching_convtransp(conv_op)(c_in, c_out, first, first, bias=False)
        self.norm = make_norm(norm_op, c_out, norm_kwargs)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        h = self.act(self.norm(self.conv(x)))
        return h if tuple(h.shape[2:]) == tuple(size) else F.interpolate(h, size=tuple(size), mode="nearest")


class _Proj(nn.Module):
    """PROJ: 1x1 conv, (B, C_i, *S_i) -> (B, ⌊C_i / 2⌋, *S_i)."""

    def __init__(self, conv_op, c_in, c_out):
        super().__init__()
        self.conv = conv_op(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        return self.conv(x)


class MultiLevelFeatureDistribution(nn.Module):
    """[S_0 (B, C_0, *S_0), ..., S_{N-1}] -> [SF_0, ..., SF_{N-1}], same shapes (eq. 5-7)."""

    def __init__(self, conv_op: Type[_ConvNd], channels: Sequence[int], strides: Sequence,
                 norm_op: Optional[Type[nn.Module]] = None, norm_op_kwargs: Optional[dict] = None) -> None:
        """``channels`` and ``strides``: the encoder's ``output_channels`` and ``strides`` (stride of stage i
        takes level i - 1 to level i)."""
        super().__init__()
        dim = conv_dim(conv_op)
        n = len(channels)
        strides = [as_per_axis(s, dim, "strides") for s in strides]
        self.channels = list(channels)
        self.strides = strides
        self.shares = [channel_shares(c, n, i) for i, c in enumerate(channels)]
        self.paths = nn.ModuleList()
        for i in range(n):
            row = nn.ModuleDict()
            for j in range(n):
                c = self.shares[i][j]
                if c == 0:
                    continue
                if j == i:
                    row[str(j)] = _Proj(conv_op, channels[j], c)
                elif j < i:
                    factor = [math.prod(s[a] for s in strides[j + 1:i + 1]) for a in range(dim)]
                    last = strides[i]
                    pre = tuple(f // l for f, l in zip(factor, last))
                    row[str(j)] = _Down(conv_op, channels[j], c, pre, last, norm_op, norm_op_kwargs)
                else:
                    row[str(j)] = _Up(conv_op, channels[j], c, strides[j], norm_op, norm_op_kwargs)
            self.paths.append(row)

    def forward(self, skips: List[torch.Tensor]) -> List[torch.Tensor]:
        if len(skips) != len(self.paths):
            raise ValueError(f"MLFD was built for {len(self.paths)} encoder levels, got {len(skips)}.")
        out = []
        for i, row in enumerate(self.paths):
            size = skips[i].shape[2:]
            out.append(torch.cat([row[str(j)](skips[j], size) for j in range(len(skips)) if str(j) in row], dim=1))
        return out

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> int:
        """Every level's redistributed parts (C_i per level; conv and norm output of each, one unit) plus their
        concatenation (C_i), for an encoder input of ``input_size``."""
        size = list(input_size)
        total = 0
        for i, c in enumerate(self.channels):
            size = [a // b for a, b in zip(size, self.strides[i])]
            total += 2 * c * math.prod(size)
        return int(total)
