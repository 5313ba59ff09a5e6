"""The other papers' modules (issue 7) against their equations, on tensors small enough to check by hand: each test
sets the weights so the paper's equation gives a number one can work out on paper, then checks a general case
against the equation written out with plain tensor ops (independent of the module's code path)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nnunet_msa.blocks.attention_gate import AttentionGate
from nnunet_msa.blocks.caf_gate import ContextAwareFusion
from nnunet_msa.blocks.cbam import CBAM
from nnunet_msa.blocks.dmk_conv import DepthwiseMultiKernelConv
from nnunet_msa.blocks.dual_mix_attention import (CrossAttention, DualMixAttention, SpatialAttentionModule,
                                                  channel_self_attention)
from nnunet_msa.blocks.mlfd import MultiLevelFeatureDistribution, channel_shares
from nnunet_msa.blocks.selective_kernel import SelectiveKernelConv
from nnunet_msa.blocks.skip_gates import SKIP_GATES, make_skip_gate
from nnunet_msa.blocks.squeeze_excitation import SqueezeExcitation

torch.manual_seed(0)


def _randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return module


def _zero(*params) -> None:
    with torch.no_grad():
        for p in params:
            if p is not None:
                p.zero_()


def _mat(conv: nn.Module) -> torch.Tensor:
    """The (C_out, C_in) matrix of a 1x1 conv."""
    return conv.weight.reshape(conv.weight.shape[0], conv.weight.shape[1])


def _pointwise(x: torch.Tensor, conv: nn.Module) -> torch.Tensor:
    """A 1x1 conv written as a matrix product over channels."""
    y = torch.einsum("oc,bc...->bo...", _mat(conv), x)
    if conv.bias is not None:
        y = y + conv.bias.view(1, -1, *([1] * (x.dim() - 2)))
    return y


# --------------------------------------------------------------------------------------------- squeeze-excitation

def test_se_hand_value_and_eq_2_to_4():
    se = SqueezeExcitation(nn.Conv2d, 4, reduction=2)
    x = torch.arange(16.0).view(1, 4, 2, 2)
    _zero(se.fc1.weight)  # ReLU(W1 z) = 0 -> s = σ(0) = 1/2 for every channel
    assert torch.equal(se(x, None), x / 2)

    _randomize(se)
    x = torch.randn(2, 4, 3, 5)
    z = x.mean(dim=(2, 3))                                                 # eq. 2
    s = torch.sigmoid(torch.relu(z @ _mat(se.fc1).T) @ _mat(se.fc2).T)     # eq. 3
    torch.testing.assert_close(se(x, torch.randn_like(x)), s[:, :, None, None] * x)  # eq. 4; G is not used


# ------------------------------------------------------------------------------------------------------------ CBAM

def test_cbam_hand_value_and_eq_1_to_3():
    cbam = CBAM(nn.Conv2d, 4, kernel_size=3, reduction=2)
    x = torch.randn(1, 4, 9, 9)
    _zero(cbam.w0.weight, cbam.spatial.weight)  # M_c = σ(0 + 0) = 1/2, M_s = σ(0) = 1/2
    torch.testing.assert_close(cbam(x), x / 4)
    assert cbam.spatial.kernel_size == (7, 7)

    _randomize(cbam, 1)
    x = torch.randn(2, 4, 9, 9)
    mlp = lambda v: torch.relu(v @ _mat(cbam.w0).T) @ _mat(cbam.w1).T  # noqa: E731
    mc = torch.sigmoid(mlp(x.mean(dim=(2, 3))) + mlp(x.amax(dim=(2, 3))))[:, :, None, None]   # eq. 2
    x1 = mc * x                                                                                 # eq. 1
    ms = torch.sigmoid(F.conv2d(torch.stack((x1.mean(1), x1.amax(1)), 1), cbam.spatial.weight, padding=3))  # eq. 3
    torch.testing.assert_close(cbam(x), ms * x1)


def test_cbam_spatial_kernel_follows_anisotropic_plans():
    cbam = CBAM(nn.Conv3d, 8, kernel_size=(1, 3, 3))
    assert cbam.spatial.kernel_size == (1, 7, 7)
    assert cbam(torch.randn(1, 8, 3, 10, 10)).shape == (1, 8, 3, 10, 10)


# ------------------------------------------------------------------------------------------ Attention U-Net gate

def test_attention_gate_hand_value_and_eq_1_2():
    ag = AttentionGate(nn.Conv2d, 4)
    x, g = torch.randn(1, 4, 5, 5), torch.randn(1, 4, 5, 5)
    _zero(ag.psi.weight)
    with torch.no_grad():
        ag.psi.bias.fill_(math.log(3.0))  # q = b_ψ = ln 3 -> α = σ(ln 3) = 3/4 everywhere
    torch.testing.assert_close(ag(x, g), 0.75 * x)

    _randomize(ag, 2)
    x, g = torch.randn(2, 4, 5, 6), torch.randn(2, 4, 5, 6)
    q = _pointwise(torch.relu(_pointwise(x, ag.w_x) + _pointwise(g, ag.w_g)), ag.psi)    # eq. 1 (b_g in w_g)
    torch.testing.assert_close(ag(x, g), torch.sigmoid(q) * x)                            # eq. 2


# ------------------------------------------------------------------------------------------------------ FIAS CAF

def test_caf_hand_value():
    caf = ContextAwareFusion(nn.Conv2d, 2, kernel_size=3)
    f1, f2 = torch.randn(1, 2, 4, 4), torch.randn(1, 2, 4, 4)
    _zero(caf.ch_out.weight, caf.ch_out.bias, caf.sp_out.weight, caf.sp_out.bias, caf.fuse.bias)
    with torch.no_grad():  # F' = Conv(w_ch ⊗ [F1; F2]) with the conv picking F1: [I | 0]
        caf.fuse.weight.zero_()
        caf.fuse.weight[0, 0] = caf.fuse.weight[1, 1] = 1.0
    # w_ch = σ(0) = 1/2, F' = F1 / 2, w_sp = σ(0) = 1/2 -> F̂ = F1 / 4
    torch.testing.assert_close(caf(f1, f2), f1 / 4)


def test_caf_eq_3_to_6():
    caf = _randomize(ContextAwareFusion(nn.Conv2d, 3, kernel_size=3), 3)
    f1, f2 = torch.randn(2, 3, 6, 5), torch.randn(2, 3, 6, 5)
    f = torch.cat((f1, f2), 1)
    h = _pointwise(f, caf.ch_in)
    pooled = torch.cat((h.mean(dim=(2, 3)), h.amax(dim=(2, 3))), 1)[:, :, None, None]
    w_ch = torch.sigmoid(_pointwise(pooled, caf.ch_out))                                  # eq. 3
    f_prime = _pointwise(w_ch * f, caf.fuse)                                               # eq. 4
    s = (_pointwise(f1, caf.sp_f1) + _pointwise(f2, caf.sp_f2)).mean(1, keepdim=True)
    w_sp = torch.sigmoid(F.conv2d(s, caf.sp_out.weight, caf.sp_out.bias, padding=1))      # eq. 5
    torch.testing.assert_close(caf(f1, f2), w_sp * f_prime)                                # eq. 6
    assert w_ch.shape == (2, 6, 1, 1) and w_sp.shape == (2, 1, 6, 5)


# ------------------------------------------------------------------------------------------------------ FIAS DMK

def test_dmk_hand_value_on_a_delta():
    dmk = DepthwiseMultiKernelConv(nn.Conv2d, 1, 1, kernel_size=3)
    assert [c.kernel_size for c in dmk.context] == [(5, 5), (7, 7)]  # k^(m) = 2(m + 1) + 1
    with torch.no_grad():
        for p in dmk.parameters():
            p.zero_()
        dmk.local.weight[0, 0, 1, 1] = 1.0          # L = X
        dmk.context[0].weight.fill_(1.0)            # Z_1 = box sum over 5x5
        dmk.pointwise.weight.fill_(1.0)             # F = L + Z_1 + Z_2
    x = torch.zeros(1, 1, 11, 11)
    x[0, 0, 5, 5] = 1.0
    y = dmk(x)[0, 0]
    expected = torch.zeros(11, 11)
    expected[3:8, 3:8] = 1.0
    expected[5, 5] += 1.0
    torch.testing.assert_close(y, expected)


def test_dmk_eq_1_2_and_anisotropic_kernels():
    dmk = _randomize(DepthwiseMultiKernelConv(nn.Conv2d, 3, 4, kernel_size=3), 4)
    x = torch.randn(2, 3, 9, 8)
    L = F.conv2d(x, dmk.local.weight, padding=1)                                           # eq. 1
    Z = [F.conv2d(L, c.weight, padding=k // 2, groups=4) for c, k in zip(dmk.context, (5, 7))]
    torch.testing.assert_close(dmk(x), _pointwise(L + Z[0] + Z[1], dmk.pointwise), rtol=1e-4, atol=1e-4)  # eq. 2
    d3 = DepthwiseMultiKernelConv(nn.Conv3d, 2, 4, kernel_size=(1, 3, 3))
    assert [c.kernel_size for c in d3.context] == [(1, 5, 5), (1, 7, 7)]
    assert d3(torch.randn(1, 2, 3, 9, 9)).shape == (1, 4, 3, 9, 9)


# --------------------------------------------------------------------------------------------- selective kernel

def test_selective_kernel_hand_value_and_select_equations():
    sk = SelectiveKernelConv(nn.Conv2d, 2, 2, kernel_size=3)
    assert [b[0].dilation for b in sk.branches] == [(1, 1), (2, 2)]
    with torch.no_grad():
        for p in sk.parameters():
            p.zero_()
        for b in sk.branches:  # U_1 = U_2 = X (centre taps), no norm / nonlin given
            b[0].weight[0, 0, 1, 1] = b[0].weight[1, 1, 1, 1] = 1.0
    x = torch.randn(1, 2, 6, 6)
    torch.testing.assert_close(sk(x), x)  # A z = 0 -> a_1 = a_2 = 1/2 -> V = (X + X) / 2

    _randomize(sk, 5)
    x = torch.randn(2, 2, 7, 7)
    u1 = F.conv2d(x, sk.branches[0][0].weight, padding=1)
    u2 = F.conv2d(x, sk.branches[1][0].weight, padding=2, dilation=2)
    s = (u1 + u2).mean(dim=(2, 3))                                                          # eq. 1-2
    z = torch.relu(s @ _mat(sk.squeeze).T)                                                  # eq. 3 (no BN)
    logits = (z @ _mat(sk.select).T).view(2, 2, 2)                                          # A_1 z, A_2 z
    a = torch.softmax(logits, dim=1)                                                        # eq. 5
    expected = a[:, 0, :, None, None] * u1 + a[:, 1, :, None, None] * u2                    # eq. 6
    torch.testing.assert_close(sk(x), expected, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------------------------- QTSeg MLFD

def test_mlfd_channel_shares():
    assert channel_shares(32, 3, 0) == [16, 8, 8]     # the paper's 2:1:1
    assert channel_shares(32, 3, 1) == [8, 16, 8]
    for c, n in ((32, 6), (320, 7), (4, 6), (7, 4)):
        for i in range(n):
            shares = channel_shares(c, n, i)
            assert sum(shares) == c and shares[i] == c // 2


def test_mlfd_eq_5_to_7_on_three_2d_levels():
    m = _randomize(MultiLevelFeatureDistribution(nn.Conv2d, [4, 8, 8], [1, 2, 2]), 6)
    s = [torch.randn(2, 4, 8, 8), torch.randn(2, 8, 4, 4), torch.randn(2, 8, 2, 2)]
    out = m(s)
    assert [o.shape for o in out] == [x.shape for x in s]
    silu = F.silu
    p = m.paths
    proj = lambda x, mod: F.conv2d(x, mod.conv.weight)  # noqa: E731
    down1 = lambda x, mod: silu(F.conv2d(x, mod.conv.weight, stride=2))  # noqa: E731  (no norm_op given)
    down2 = lambda x, mod: silu(F.conv2d(F.avg_pool2d(x, 2), mod.conv.weight, stride=2))  # noqa: E731
    up1 = lambda x, mod: silu(F.conv_transpose2d(x, mod.conv.weight, stride=2))  # noqa: E731
    up2 = lambda x, mod: F.interpolate(up1(x, mod), scale_factor=2, mode="nearest")  # noqa: E731
    sf0 = torch.cat((proj(s[0], p[0]["0"]), up1(s[1], p[0]["1"]), up2(s[2], p[0]["2"])), 1)     # eq. 5
    sf1 = torch.cat((down1(s[0], p[1]["0"]), proj(s[1], p[1]["1"]), up1(s[2], p[1]["2"])), 1)   # eq. 6
    sf2 = torch.cat((down2(s[0], p[2]["0"]), down1(s[1], p[2]["1"]), proj(s[2], p[2]["2"])), 1)  # eq. 7
    for o, e in zip(out, (sf0, sf1, sf2)):
        torch.testing.assert_close(o, e, rtol=1e-4, atol=1e-5)
    assert [x.shape[1] for x in (p[0]["0"].conv.weight, p[0]["1"].conv.weight)] == [4, 1]  # PROJ 4->2, UP 8->1


def test_mlfd_generalizes_to_n_levels_and_anisotropic_3d():
    strides = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [1, 2, 2], [2, 2, 2]]
    channels = [4, 8, 16, 32, 32]
    m = MultiLevelFeatureDistribution(nn.Conv3d, channels, strides, nn.InstanceNorm3d, {"affine": True})
    sizes = [[8, 32, 32], [8, 16, 16], [4, 8, 8], [4, 4, 4], [2, 2, 2]]
    s = [torch.randn(1, c, *z) for c, z in zip(channels, sizes)]
    out = m(s)
    assert [tuple(o.shape) for o in out] == [tuple(x.shape) for x in s]
    # every output level draws on every input level: a change in S_j changes every SF_i
    for j in range(5):
        s2 = [x.clone() for x in s]
        s2[j] += 1.0 + torch.randn_like(s2[j])
        out2 = m(s2)
        for i in range(5):
            if m.shares[i][j]:
                assert not torch.allclose(out[i], out2[i]), (i, j)


# --------------------------------------------------------------------------------------- QTSeg dual-mix attention

def test_channel_self_attention_hand_value_eq_1():
    s = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]).view(1, 2, 2, 1)   # C = 2 channels over N = 2 positions
    e = math.exp(3.0 / 2)                                           # t · Q K^T / N = 3 · I / 2
    a = torch.tensor([[e, 1.0], [1.0, e]]) / (e + 1)
    expected = (a @ torch.eye(2) + torch.eye(2)).view(1, 2, 2, 1)
    torch.testing.assert_close(channel_self_attention(s, torch.tensor([3.0])), expected)


def test_channel_self_attention_does_not_saturate_on_3d_patches():
    s = torch.randn(1, 8, 40, 56, 40)  # the hippocampus 3d_fullres patch, N = 89600 positions
    flat = s.flatten(2)
    gram = flat @ flat.transpose(1, 2)
    attn = torch.softmax(gram / flat.shape[-1], -1)
    # eq. 1 as printed, and with the √N of eq. 3, are one-hot on a 3D patch; / N is not
    assert torch.softmax(gram, -1).max() > 0.999 and torch.softmax(gram / math.sqrt(flat.shape[-1]), -1).max() > 0.999
    assert attn.max() < 0.5
    torch.testing.assert_close(channel_self_attention(s, torch.ones(1)).flatten(2), attn @ flat + flat,
                               rtol=1e-4, atol=1e-4)


def test_spatial_attention_module_eq_2():
    sam = SpatialAttentionModule(nn.Conv2d, (3, 3))
    s = torch.randn(1, 3, 5, 5)
    _zero(sam.conv.weight)
    torch.testing.assert_close(sam(s), s / 2)
    _randomize(sam, 7)
    pooled = torch.stack((s.mean(1), s.amax(1)), 1)
    torch.testing.assert_close(sam(s), torch.sigmoid(F.conv2d(pooled, sam.conv.weight, padding=1)) * s)


def test_cross_attention_hand_value_eq_3():
    ca = CrossAttention(2)
    with torch.no_grad():
        for lin in (ca.w_q, ca.w_k, ca.w_v):
            lin.weight.copy_(torch.eye(2))
    q = torch.tensor([[[1.0, 0.0]]])                          # one token
    kv = torch.tensor([[[2.0, 0.0], [0.0, 2.0]]])             # two positions
    w = torch.softmax(torch.tensor([2.0, 0.0]) / math.sqrt(2), 0)   # Q'K'^T / √d = [2, 0] / √2
    torch.testing.assert_close(ca(q, kv), (w @ kv[0]).view(1, 1, 2))


def test_dual_mix_attention_eq_1_to_4_order():
    dma = _randomize(DualMixAttention(nn.Conv2d, 4, 3), 8)
    s, qt = torch.randn(2, 4, 5, 6), torch.randn(2, 3, 4)
    out, qt_out = dma(s, qt)
    s_cab, s_sam = channel_self_attention(s, dma.cab.logit_scale), dma.sam(s)
    f_cab, f_sam = s_cab.flatten(2).transpose(1, 2), s_sam.flatten(2).transpose(1, 2)
    qt1 = dma.token_norm1(qt + dma.ctfa_cab(qt, f_cab) + dma.ctfa_sam(qt, f_sam))          # eq. 4
    feat = f_cab + f_sam
    feat = feat + dma.cfta(feat, qt1)                                                       # CFTA
    qt2 = dma.token_norm2(qt1 + dma.ctfa_out(qt1, feat))
    torch.testing.assert_close(qt_out, qt2)
    torch.testing.assert_close(out, feat.transpose(1, 2).reshape(s.shape))  # no norm_op given
    assert out.shape == s.shape and qt_out.shape == qt.shape


def test_every_gate_keeps_the_skip_shape_2d_and_3d():
    for conv, shape, k in ((nn.Conv2d, (2, 6, 8, 10), (3, 3)), (nn.Conv3d, (1, 6, 3, 8, 8), (1, 3, 3))):
        for kind in SKIP_GATES:
            gate = make_skip_gate(kind, conv, 6, k, nn.InstanceNorm3d if conv is nn.Conv3d else nn.InstanceNorm2d,
                                  {"affine": True}, nn.LeakyReLU, {"inplace": True})
            x, g = torch.randn(shape), torch.randn(shape)
            out = gate(x, g) if kind != "none" else gate(x)
            assert out.shape == x.shape and torch.isfinite(out).all(), kind
    with pytest.raises(ValueError, match="skip_gate must be one of"):
        make_skip_gate("cbma", nn.Conv2d, 4, (3, 3))
