"""QTSeg's dual-mix attention (DMA; Tran et al., "QTSeg", Sec. III-B, eq. 1-4) on nnU-Net feature maps, 2D or 3D.

For a decoder feature S (B, C, *S) with N = ∏S positions and the per-class query tokens QT (B, n_cls, C):

    S_CAB = softmax(t · Q K^T / N) V + S,  Q = K = V = flatten(S) ∈ R^{C×N}         (CAB, eq. 1: C×C attention)
    S_SAM = σ(f^{k}([mean_c(S); max_c(S)])) ⊙ S                                      (SAM, eq. 2; k = planned kernel)
    CTFA(QT, X) = softmax((QT W^q)(X W^k)^T / √d) (X W^v)                             (eq. 3: tokens attend to positions)
    QT  <- CTFA(QT, S_CAB) + CTFA(QT, S_SAM) + QT                                     (eq. 4)
    S'  = S_CAB + S_SAM;  S' <- S' + CFTA(S', QT)                                     (CFTA: positions attend to tokens)
    QT  <- QT + CTFA(QT, S')                                                          (the final token alignment)

What changed for 3D patches: eq. 1 is written without scaling. Its logits are sums over N positions, so the diagonal
grows like N (N = 89600 for the hippocampus 3d patch, ~10^6 for larger ones) and the softmax becomes one-hot; even
dividing by √N (as eq. 3 does for d_k) leaves the diagonal at √N. Here they are divided by N, which makes them the
channels' mean products over positions (a correlation for normalized features, bounded for any patch size), times a
learned logit scale t (init 1), as XCiT's temperature in its cross-covariance attention. No attention matrix grows
with N² (the paper's reason for SAM over spatial self-attention): CAB is C×C, CTFA n_cls×N, CFTA N×n_cls, all
linear in N. The output S' goes through the plans' norm, the tokens through LayerNorm after each update (the paper
leaves the norms to its figure). Attention softmaxes run in float32 under autocast. With ``recompute`` the block
keeps only its inputs for backward.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Type, Union

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd

from nnunet_msa.blocks.geometry import same_padding
from nnunet_msa.blocks.norm_act import make_norm
from nnunet_msa.blocks.recompute import maybe_recompute
from nnunet_msa.blocks.geometry import as_per_axis, conv_dim


def channel_self_attention(s: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """CAB, eq. 1: (B, C, *S) -> (B, C, *S), softmax(t · Q K^T / N) V + S with Q = K = V = flatten(S), t =
    ``logit_scale``.

    The Gram matrix Q K^T sums N products per entry (its diagonal is about N for unit-variance features: past
    float16's 65504 from N = 2^16 on), so it and the softmax run in float32 with autocast off, whatever the autocast
    dtype; only the product with V (rows of the softmax sum to 1: bounded by max |S|) runs in the input's dtype."""
    flat = s.flatten(2)
    with torch.autocast(device_type=s.device.type, enabled=False):
        f32 = flat.float()
        logits = torch.bmm(f32, f32.transpose(1, 2)) * (logit_scale.float() / flat.shape[-1])
        attn = torch.softmax(logits, dim=-1)
    return (torch.bmm(attn.to(flat.dtype), flat) + flat).view_as(s)


class ChannelAttentionBlock(nn.Module):
    """CAB, eq. 1, with its learned logit scale t (a temperature 1/t; not SACM's annealed τ): (B, C, *S) ->
    (B, C, *S)."""

    def __init__(self) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.ones(1))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return channel_self_attention(s, self.logit_scale)


class SpatialAttentionModule(nn.Module):
    """SAM, eq. 2: (B, C, *S) -> (B, C, *S), σ(f([mean_c; max_c])) ⊙ S."""

    def __init__(self, conv_op: Type[_ConvNd], kernel_size: Sequence[int]) -> None:
        super().__init__()
        self.conv = conv_op(2, 1, kernel_size, padding=same_padding(kernel_size), bias=False)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(torch.cat((s.mean(1, keepdim=True), s.amax(1, keepdim=True)), dim=1))) * s


class CrossAttention(nn.Module):
    """Eq. 3: (queries (B, L_q, C), keys/values (B, L_k, C)) -> (B, L_q, C); single head, d = C."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.w_q = nn.Linear(channels, channels, bias=False)
        self.w_k = nn.Linear(channels, channels, bias=False)
        self.w_v = nn.Linear(channels, channels, bias=False)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        q, k, v = self.w_q(queries), self.w_k(keys), self.w_v(keys)
        logits = torch.bmm(q, k.transpose(1, 2)).float() / math.sqrt(k.shape[-1])
        return torch.bmm(torch.softmax(logits, dim=-1).to(v.dtype), v)


class DualMixAttention(nn.Module):
    """(S: (B, C, *S), QT: (B, n_cls, C)) -> (S': (B, C, *S), QT': (B, n_cls, C))."""

    def __init__(self, conv_op: Type[_ConvNd], channels: int, kernel_size: Union[int, Sequence[int]] = 3,
                 norm_op: Optional[Type[nn.Module]] = None, norm_op_kwargs: Optional[dict] = None) -> None:
        super().__init__()
        k = as_per_axis(kernel_size, conv_dim(conv_op), "kernel_size")
        self.channels = channels
        self.recompute = False
        self.cab = ChannelAttentionBlock()
        self.sam = SpatialAttentionModule(conv_op, k)
        self.ctfa_cab = CrossAttention(channels)
        self.ctfa_sam = CrossAttention(channels)
        self.cfta = CrossAttention(channels)
        self.ctfa_out = CrossAttention(channels)
        self.token_norm1 = nn.LayerNorm(channels)
        self.token_norm2 = nn.LayerNorm(channels)
        self.out_norm = make_norm(norm_op, channels, norm_op_kwargs)

    def _block(self, s: torch.Tensor, qt: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        s_cab = self.cab(s)                                                # eq. 1
        s_sam = self.sam(s)                                                # eq. 2
        f_cab, f_sam = s_cab.flatten(2).transpose(1, 2), s_sam.flatten(2).transpose(1, 2)   # (B, N, C)
        qt = self.token_norm1(qt + self.ctfa_cab(qt, f_cab) + self.ctfa_sam(qt, f_sam))    # eq. 3-4
        feat = f_cab + f_sam
        feat = feat + self.cfta(feat, qt)                                  # CFTA
        qt = self.token_norm2(qt + self.ctfa_out(qt, feat))               # final CTFA
        out = self.out_norm(feat.transpose(1, 2).reshape(s.shape))
        return out, qt

    def forward(self, s: torch.Tensor, qt: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return maybe_recompute(self.recompute, self._block, s, qt)

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> int:
        """Kept for backward when not recomputed: S_CAB, S_SAM, their sum, the CFTA query projection and result,
        the normed output (C maps each) plus the CFTA attention (n_cls maps, small), halved like a conv block; with
        ``recompute`` the inputs only."""
        n = math.prod(int(i) for i in input_size)
        if self.recompute:
            return int(self.channels * n // 2)
        return int(6 * self.channels * n // 2)
