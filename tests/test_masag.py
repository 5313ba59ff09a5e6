"""MASAG follows equations 1-6 of the MSA2-Net (MASAG) paper on a hand-checked tiny tensor; shapes, gradients,
precision."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nnunet_msa.blocks.masag import MASAG


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def _hand_set(m: MASAG) -> None:
    """Weights chosen so that every equation is easy to write by hand (no norms, no nonlinearity)."""
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        m.dw[0].weight[:, 0, 1, 1] = 1.0  # DW: identity
        m.dwd[0].weight[:, 0, 1, 1] = 2.0  # DWD: times 2
        m.local_proj.weight[:, :, 0, 0] = torch.eye(2)
        m.local_proj.bias[:] = torch.tensor([0.5, -0.5])
        m.global_proj.weight[0, :, 0, 0] = torch.tensor([1.0, -1.0])  # mean_c(G) - max_c(G)
        m.global_proj.bias[:] = 0.1
        m.select.weight[:, :, 0, 0] = torch.eye(2)
        m.recal_proj.weight[:, :, 0, 0] = torch.eye(2)
        m.out_proj.weight[:, :, 0, 0] = torch.tensor([[2.0, 0.0], [0.0, 1.0]])


def test_equations_1_to_6_on_a_hand_checked_tensor():
    m = MASAG(nn.Conv2d, 2, 3, norm_op=None, nonlin=None).double()
    _hand_set(m)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1, 2, 2, 2))
    G = rng.normal(size=(1, 2, 2, 2))
    # eq. 1: U = Conv1x1(DWD(DW(X))) + Conv1x1([mean_c G; max_c G])
    local = 2 * X + np.array([0.5, -0.5]).reshape(1, 2, 1, 1)
    glob = G.mean(1, keepdims=True) - G.max(1, keepdims=True) + 0.1
    U = local + glob
    # eq. 2-3: SW = softmax over the 2 channels of Conv1x1(U) (identity here); X' = SW1 X + X, G' = SW2 G + G
    e = np.exp(U - U.max(1, keepdims=True))
    SW = e / e.sum(1, keepdims=True)
    X1 = SW[:, 0:1] * X + X
    G1 = SW[:, 1:2] * G + G
    # eq. 4-5: X'' = X' σ(G'), G'' = G' σ(X'), U' = X'' G''
    U1 = (X1 * _sigmoid(G1)) * (G1 * _sigmoid(X1))
    # eq. 6: out = Conv1x1(σ(Conv1x1(U')) X)
    att = _sigmoid(U1)
    expected = np.einsum("oc,bcxy->boxy", np.array([[2.0, 0.0], [0.0, 1.0]]), att * X)
    out = m(torch.from_numpy(X), torch.from_numpy(G))
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("conv,norm,kernel,size", [
    (nn.Conv2d, nn.InstanceNorm2d, [3, 3], (12, 10)),
    (nn.Conv3d, nn.InstanceNorm3d, [3, 3, 3], (6, 8, 8)),
    (nn.Conv3d, nn.InstanceNorm3d, [1, 3, 3], (4, 8, 8)),
])
def test_shapes_gradients_batch_one(conv, norm, kernel, size):
    m = MASAG(conv, 8, kernel, norm_op=norm, norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=nn.LeakyReLU,
              nonlin_kwargs={"inplace": True})
    x = torch.randn(1, 8, *size, requires_grad=True)
    g = torch.randn(1, 8, *size, requires_grad=True)
    y = m(x, g)
    assert y.shape == x.shape
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(g.grad).all()
    assert all(p.grad is not None for p in m.parameters())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_attention_path_runs_in_float32_under_autocast(dtype):
    """X''·G'' of large features overflows float16; the gate computes it in float32."""
    m = MASAG(nn.Conv2d, 4, 3, norm_op=nn.InstanceNorm2d, norm_op_kwargs={"affine": True}, nonlin=nn.LeakyReLU)
    x = torch.randn(2, 4, 8, 8) * 300
    g = torch.randn(2, 4, 8, 8) * 300
    with torch.autocast("cpu", dtype=dtype):
        u = m.context(x, g)
        att = m.attention_map(x, g, u)
        y = m(x, g)
    assert att.dtype == torch.float32
    assert torch.isfinite(att).all() and torch.isfinite(y.float()).all()


def test_mismatched_inputs_are_rejected():
    m = MASAG(nn.Conv2d, 4, 3)
    with pytest.raises(ValueError, match="same shape"):
        m(torch.randn(1, 4, 8, 8), torch.randn(1, 4, 4, 4))
