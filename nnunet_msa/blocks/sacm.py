"""SACM: self-adaptive convolution module (MSA2-Net with SACM in nnU-Net, Sec. "Self-adaptive convolution
module"; its equations were lost in extraction and are fixed by ``shared/design/MSA2_SPEC.md``).

A convolution whose kernel is a per-sample soft mixture of K candidate kernels with growing receptive fields:

    r_k = conv_k(x)                                  (candidate responses, k = 1..K)
    f   = [mean_S(r_k), std_S(r_k)]_k                (fingerprint, (B, 2·K·C_k), float32)
    π   = softmax(MLP(f) / τ)                        (attention over candidates, (B, K), float32)
    y   = Σ_k π_k · r_k + b                          ("outputs" form)
        = conv(x, Σ_k π_k · Ŵ_k) + b                 ("kernel" form, Ŵ_k on the largest grid)

Both forms are implemented; ``forward`` uses the cheaper outputs form, ``forward_kernel_form`` exists so that
tests can hold the two (and a naive per-sample loop) to each other.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Type, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.conv import _ConvNd

from nnunet_msa.blocks.fast_conv import channels_last, fast_conv
from nnunet_msa.blocks.fused_ops import mix_candidates, spatial_mean_std

REALIZATIONS = ("dilated", "dense", "separable", "shared")
_CONV_FN = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_DIM = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3}


@dataclass(frozen=True)
class SACMConfig:
    """Options of every SACM in a network.

    enabled: False replaces SACM by a static ``conv_op`` of the planned kernel size (ablation "noSACM").
    num_candidates: K, candidate receptive fields 3, 5, 7, ... on every axis planned with kernel 3.
    realization: one of ``dilated`` (default), ``dense``, ``separable``, ``shared`` (see ``SACM``).
    reduction: r of the gate's hidden width max(C_k // r, 8).
    kind: which multi-scale convolution takes SACM's place (``blocks/multiscale_conv.py``): "sacm" (default),
        "dmk", "selective_kernel" or "static"; the other fields only apply to "sacm".
    """

    enabled: bool = True
    num_candidates: int = 3
    realization: str = "dilated"
    reduction: int = 4
    kind: str = "sacm"

    def __post_init__(self) -> None:
        if self.realization not in REALIZATIONS:
            raise ValueError(f"SACM realization must be one of {REALIZATIONS}, got {self.realization!r}.")
        if self.num_candidates < 1:
            raise ValueError(f"SACM needs at least one candidate kernel, got num_candidates={self.num_candidates}.")
        if self.reduction < 1:
            raise ValueError(f"SACM reduction must be >= 1, got {self.reduction}.")


def conv_dim(conv_op: Type[_ConvNd]) -> int:
    """Spatial dimensionality (1, 2 or 3) of a ``torch.nn.ConvNd`` class."""
    for cls, dim in _CONV_DIM.items():
        if issubclass(conv_op, cls):
            return dim
    raise ValueError(f"conv_op must be nn.Conv1d, nn.Conv2d or nn.Conv3d, got {conv_op}.")


def as_per_axis(value: Union[int, Sequence[int]], dim: int, name: str) -> Tuple[int, ...]:
    """Expand a scalar to one value per spatial axis; check the length of a sequence."""
    if isinstance(value, int):
        return (value,) * dim
    value = tuple(int(v) for v in value)
    if len(value) != dim:
        raise ValueError(f"{name} {list(value)} has {len(value)} entries but the convolution is {dim}D.")
    return value


class SACM(nn.Module):
    """Self-adaptive convolution, (B, C_in, *S) -> (B, C_out, *S), stride 1, 'same' padding.

    Args:
        conv_op: ``nn.Conv2d`` or ``nn.Conv3d`` (sets the dimensionality).
        in_channels, out_channels: C_in, C_out.
        kernel_size: the planned kernel, per axis. An axis planned with kernel 1 stays 1 in every candidate; an axis
            with odd kernel k gets candidates of receptive field (k - 1)·j + 1, j = 1..K (3, 5, 7 for k = 3).
        num_candidates: K.
        realization:
            ``dilated``: candidate j is a k-tap kernel W_j at dilation j;
            ``dense``: candidate j is a dense kernel of size (k - 1)·j + 1;
            ``separable``: depthwise dilated candidates on C_in mixed per sample, then one pointwise C_in -> C_out;
            ``shared``: one k-tap kernel applied at dilations 1..K.
        reduction: gate hidden width max(C_k // reduction, 8), C_k = C_out (C_in for ``separable``).
        bias: add a learned bias b (C_out).
        eps: added to the variance of the fingerprint before the square root.
    Buffers:
        temperature: τ (scalar, persistent, default 1); set in place by the trainer's annealing.
    """

    def __init__(
        self,
        conv_op: Type[_ConvNd],
        in_channels: int,
        out_channels: int,
        kernel_size: Union[int, Sequence[int]] = 3,
        num_candidates: int = 3,
        realization: str = "dilated",
        reduction: int = 4,
        bias: bool = True,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if realization not in REALIZATIONS:
            raise ValueError(f"SACM realization must be one of {REALIZATIONS}, got {realization!r}.")
        self.dim = conv_dim(conv_op)
        self.kernel_size = as_per_axis(kernel_size, self.dim, "kernel_size")
        if any(k < 1 or k % 2 == 0 for k in self.kernel_size):
            raise ValueError(f"SACM needs odd kernel sizes per axis (1 or 3 in nnU-Net plans), got "
                             f"{list(self.kernel_size)}.")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.num_candidates = int(num_candidates)
        self.realization = realization
        self.eps = float(eps)
        self.observe = False
        self.last_pi: Optional[torch.Tensor] = None

        K = self.num_candidates
        depthwise = realization == "separable"
        c_resp = self.in_channels if depthwise else self.out_channels  # C_k: channels of the candidate responses
        c_w_in = 1 if depthwise else self.in_channels
        if realization == "dense":
            shapes = [tuple(self._rf(k, j) for k in self.kernel_size) for j in range(1, K + 1)]
        else:
            shapes = [self.kernel_size] * K
        n_tensors = 1 if realization == "shared" else K
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.empty(c_resp, c_w_in, *shapes[j])) for j in range(n_tensors)])
        self.pointwise = conv_op(self.in_channels, self.out_channels, 1, bias=bias) if depthwise else None
        self.bias = nn.Parameter(torch.zeros(self.out_channels)) if (bias and not depthwise) else None

        hidden = max(c_resp // reduction, 8)
        self.gate = nn.Sequential(nn.Linear(2 * K * c_resp, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, K))
        self.register_buffer("temperature", torch.ones(()), persistent=True)
        self.reset_parameters()

    # ------------------------------------------------------------------ geometry of the candidates
    @staticmethod
    def _rf(k: int, j: int) -> int:
        """Receptive field on an axis with planned kernel k of candidate j (1-based)."""
        return (k - 1) * j + 1

    @property
    def receptive_fields(self) -> List[int]:
        """Receptive field of each candidate on the widest axis (3, 5, 7 for K = 3 and kernel 3)."""
        k = max(self.kernel_size)
        return [self._rf(k, j) for j in range(1, self.num_candidates + 1)]

    def _dilation(self, j: int) -> Tuple[int, ...]:
        if self.realization == "dense":
            return (1,) * self.dim
        return tuple(j if k > 1 else 1 for k in self.kernel_size)

    def _padding(self, j: int) -> Tuple[int, ...]:
        return tuple((self._rf(k, j) - 1) // 2 for k in self.kernel_size)

    def _weight(self, j: int) -> torch.Tensor:
        return self.weights[0] if self.realization == "shared" else self.weights[j - 1]

    def reset_parameters(self) -> None:
        """He init of the candidates as nnU-Net's ``InitWeights_He(1e-2)`` does for its convs."""
        for w in self.weights:
            nn.init.kaiming_normal_(w, a=1e-2)
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        if self.pointwise is not None:
            nn.init.kaiming_normal_(self.pointwise.weight, a=1e-2)
            if self.pointwise.bias is not None:
                nn.init.zeros_(self.pointwise.bias)

    # ------------------------------------------------------------------ the math
    def candidate_responses(self, x: torch.Tensor) -> List[torch.Tensor]:
        """r_k = conv_k(x) for k = 1..K, each (B, C_k, *S), no bias."""
        depthwise = self.realization == "separable"
        groups = self.in_channels if depthwise else 1
        if depthwise and x.device.type == "cpu":
            x = channels_last(x)  # once for the K depthwise calls; responses stay channels-last (fast_conv)
        return [fast_conv(x, self._weight(j), None, self._padding(j), self._dilation(j), groups,
                          keep_channels_last=depthwise)
                for j in range(1, self.num_candidates + 1)]

    def fingerprint(self, responses: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-channel spatial mean and population std of each response: (B, 2·K·C_k), float32 (or wider).

        ``fused_ops.spatial_mean_std``: the numbers of ``torch.var_mean``, fewer passes over r in forward and
        backward."""
        stats = []
        for r in responses:
            stats += list(spatial_mean_std(r, self.eps))
        return torch.cat(stats, dim=1)

    def attention(self, responses: Sequence[torch.Tensor]) -> torch.Tensor:
        """π = softmax(MLP(fingerprint) / τ) over the K candidates: (B, K), float32, rows sum to 1."""
        fp = self.fingerprint(responses)
        with torch.autocast(device_type=fp.device.type, enabled=False):
            logits = self.gate(fp.to(self.gate[0].weight.dtype))
            pi = torch.softmax(logits / self.temperature.to(logits.dtype), dim=1)
        if self.observe:
            self.last_pi = pi.detach()
        return pi

    def _finish(self, mixed: torch.Tensor) -> torch.Tensor:
        if self.pointwise is not None:
            return self.pointwise(mixed).contiguous()  # mixed may be channels-last (depthwise on CPU)
        if self.bias is not None:
            mixed = mixed + self.bias.to(mixed.dtype).view(1, -1, *([1] * self.dim))
        return mixed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs form: y = Σ_k π_k · conv_k(x) + b. x: (B, C_in, *S) -> (B, C_out, *S)."""
        if x.dim() != self.dim + 2:
            raise ValueError(f"SACM is {self.dim}D and expects a (B, C, {', '.join('S' * self.dim)}) tensor, "
                             f"got shape {tuple(x.shape)}.")
        responses = self.candidate_responses(x)
        pi = self.attention(responses)
        return self._finish(mix_candidates(pi, responses))

    # ------------------------------------------------------------------ the kernel form (for tests and analysis)
    def embedded_kernels(self) -> torch.Tensor:
        """Ŵ_k: every candidate placed in the largest grid, (K, C_k, C_w_in, *R), R = rf of the last candidate.

        Zero-padded for ``dense``, zero-inserted at dilation k for ``dilated``/``shared``/``separable``.
        """
        K = self.num_candidates
        big = tuple(self._rf(k, K) for k in self.kernel_size)
        w0 = self._weight(1)
        out = w0.new_zeros((K,) + tuple(w0.shape[:2]) + big)
        for j in range(1, K + 1):
            w = self._weight(j)
            dil, size = self._dilation(j), w.shape[2:]
            index = [slice(None), slice(None)]
            for ax in range(self.dim):
                extent = (size[ax] - 1) * dil[ax] + 1
                start = (big[ax] - extent) // 2
                index.append(slice(start, start + extent, dil[ax]))
            out[(j - 1, *index)] = w
        return out

    def forward_kernel_form(self, x: torch.Tensor) -> torch.Tensor:
        """Kernel form: y_b = conv(x_b, Σ_k π_bk · Ŵ_k) + b, one grouped conv over the batch. Same result as
        ``forward``; π still comes from the candidate responses (the fingerprint needs them)."""
        B = x.shape[0]
        pi = self.attention(self.candidate_responses(x))
        w_hat = self.embedded_kernels()  # (K, C_k, C_w_in, *R)
        w_b = torch.einsum("bk,k...->b...", pi.to(w_hat.dtype), w_hat)  # (B, C_k, C_w_in, *R)
        pad = tuple((r - 1) // 2 for r in w_hat.shape[3:])
        c_k = w_hat.shape[1]
        groups = B * self.in_channels if self.realization == "separable" else B
        y = _CONV_FN[self.dim](x.reshape(1, B * self.in_channels, *x.shape[2:]),
                               w_b.reshape(B * c_k, *w_b.shape[2:]), None, 1, pad, 1, groups)
        return self._finish(y.reshape(B, c_k, *x.shape[2:]))

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> int:
        """Elements of the maps SACM keeps for backward: K responses and the mixed output (nnU-Net's unit)."""
        c_k = self.in_channels if self.realization == "separable" else self.out_channels
        n = math.prod(int(s) for s in input_size)
        extra = self.out_channels * n if self.pointwise is not None else 0
        return int(self.num_candidates * c_k * n + c_k * n + extra)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={list(self.kernel_size)}, "
                f"K={self.num_candidates}, realization={self.realization}, rf={self.receptive_fields}")
