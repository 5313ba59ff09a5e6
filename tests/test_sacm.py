"""SACM math: both forms against a naive per-sample loop, π, τ, shapes, gradients, batch size 1, real data."""
from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nnunet_msa.blocks.sacm import REALIZATIONS, SACM

CONV = {2: nn.Conv2d, 3: nn.Conv3d}
FN = {2: F.conv2d, 3: F.conv3d}


def naive_input_fingerprint(m: SACM, xb: torch.Tensor) -> torch.Tensor:
    """[μ, σ, s_1..s_K] per channel of one sample (1, C, *S) written out with loops over the pyramid's windows."""
    x = xb[0]
    C = x.shape[0]
    flat = x.reshape(C, -1)
    mu = flat.mean(1)
    sd = torch.sqrt(((flat - mu[:, None]) ** 2).mean(1) + m.eps)
    feats, level = [mu, sd], x
    for _ in range(m.num_candidates):
        window = [2 if (k > 1 and s >= 2) else 1 for k, s in zip(m.kernel_size, level.shape[1:])]
        if any(w > 1 for w in window):
            out_shape = [s // w for s, w in zip(level.shape[1:], window)]
            pooled = torch.zeros(C, *out_shape, dtype=x.dtype)
            for idx in itertools.product(*[range(o) for o in out_shape]):
                block = level[(slice(None),) + tuple(slice(i * w, (i + 1) * w) for i, w in zip(idx, window))]
                pooled[(slice(None),) + idx] = block.reshape(C, -1).mean(1)
            level = pooled
        lf = level.reshape(C, -1)
        lsd = torch.sqrt(((lf - lf.mean(1, keepdim=True)) ** 2).mean(1) + m.eps)
        feats.append(lsd / sd)
    return torch.cat(feats)


def naive_sacm(m: SACM, x: torch.Tensor) -> torch.Tensor:
    """Reference written from the spec's definitions, one sample and one candidate at a time, float64."""
    dim, K = m.dim, m.num_candidates
    outs = []
    for b in range(x.shape[0]):
        xb = x[b:b + 1].double()
        responses = []
        for j in range(1, K + 1):
            w = (m.weights[0] if m.realization == "shared" else m.weights[j - 1]).double()
            if m.realization == "dense":
                dil = [1] * dim
                pad = [(s - 1) // 2 for s in w.shape[2:]]
            else:  # dilated, shared, separable: k taps at candidate j's dilation (j, or planned) on axes with k > 1
                dil = list(m.dilations[j - 1])
                pad = [d * (k - 1) // 2 for d, k in zip(dil, m.kernel_size)]
            groups = m.in_channels if m.realization == "separable" else 1
            xin = xb[:, m.input_groups[j - 1]] if m.realization == "split" else xb  # split: its input group only
            if m.realization == "bottleneck" and j > 1:  # the wider candidates see the 1x1-reduced input R x
                xin = FN[dim](xb, m.reduce.double())
            responses.append(FN[dim](xin, w, None, 1, pad, dil, groups)[0])  # (C_k, *S)
        stats = []
        for r in responses:
            flat = r.reshape(r.shape[0], -1)
            mean = flat.mean(1)
            std = torch.sqrt(((flat - mean[:, None]) ** 2).mean(1) + m.eps)
            stats += [mean, std]
        fp = torch.cat(stats) if m.fingerprint_kind == "responses" else naive_input_fingerprint(m, xb)
        l1, l2 = m.gate[0], m.gate[2]
        h = torch.relu(l1.weight.double() @ fp + l1.bias.double())
        logits = l2.weight.double() @ h + l2.bias.double()
        pi = torch.softmax(logits / float(m.temperature), 0)
        y = sum(pi[k] * responses[k] for k in range(K))
        if m.pointwise is not None:
            y = FN[dim](y[None], m.pointwise.weight.double(), m.pointwise.bias.double())[0]
        elif m.bias is not None:
            y = y + m.bias.double().view(-1, *([1] * dim))
        outs.append(y)
    return torch.stack(outs)


CASES = [(2, [3, 3], (11, 9)), (3, [3, 3, 3], (7, 8, 6)), (3, [1, 3, 3], (5, 9, 8))]


@pytest.mark.parametrize("fingerprint", ["responses", "input"])
@pytest.mark.parametrize("realization", REALIZATIONS)
@pytest.mark.parametrize("dim,kernel,size", CASES)
def test_both_forms_equal_naive_loop(realization, dim, kernel, size, fingerprint):
    """Every realization × fingerprint × form against the per-sample loop, float64, 2D/3D/anisotropic; values and
    the gradients of x and every parameter (forward() runs the form SACM picks; both forms are checked)."""
    torch.manual_seed(0)
    m = SACM(CONV[dim], 3, 4, kernel, num_candidates=3, realization=realization, fingerprint=fingerprint).double()
    with torch.no_grad():
        m.temperature.fill_(0.7)
        if m.bias is not None:
            m.bias.normal_()
    x = torch.randn(3, 3, *size, dtype=torch.float64, requires_grad=True)
    ref = naive_sacm(m, x)
    g = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, [x] + list(m.parameters()), g)
    for form in (m.forward, m.forward_outputs_form, m.forward_kernel_form):
        y = form(x)
        torch.testing.assert_close(y, ref, rtol=1e-9, atol=1e-9)
        for got, want in zip(torch.autograd.grad(y, [x] + list(m.parameters()), g), ref_grads):
            torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("dim,kernel,size", CASES + [(2, [3, 3], (14, 10)), (2, [3, 1], (9, 7))])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_input_fingerprint_in_prediction_equals_naive_loop(dim, kernel, size, dtype):
    """Without autograd (prediction) the pyramid pools a channels-last copy on CPU in 2D (``sacm_fingerprint``):
    the same numbers as the loop over the windows and as the training (NCHW) path; odd and even sizes, float64 and
    float32."""
    torch.manual_seed(0)
    m = SACM(CONV[dim], 5, 4, kernel, num_candidates=3, fingerprint="input").to(dtype)
    x = torch.randn(2, 5, *size, dtype=dtype) * 3 + 1
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    with torch.inference_mode():
        fast = m.input_fingerprint(x)
    for b in range(x.shape[0]):
        torch.testing.assert_close(fast[b], naive_input_fingerprint(m, x[b:b + 1].double()).to(dtype), **tol)
    torch.testing.assert_close(fast, m.input_fingerprint(x.clone().requires_grad_(True)).detach(), **tol)


PLANNED_CASES = [(2, [3, 3], (11, 9), [[1, 1], [2, 3], [4, 4]]),
                 (3, [1, 3, 3], (5, 9, 8), [[1, 1, 1], [1, 2, 3], [1, 4, 2]]),
                 (3, [3, 3, 3], (6, 7, 6), [[1, 1, 1], [1, 1, 1], [2, 3, 1]])]


@pytest.mark.parametrize("fingerprint", ["responses", "input"])
@pytest.mark.parametrize("realization", REALIZATIONS)
@pytest.mark.parametrize("dim,kernel,size,dilations", PLANNED_CASES)
def test_planned_dilations_equal_naive_loop(realization, dim, kernel, size, dilations, fingerprint):
    """Candidates at planned per-axis dilations (issue 19), anisotropic and repeated ones included: every form
    against the per-sample loop in float64, values and gradients; the receptive fields follow the dilations."""
    torch.manual_seed(1)
    m = SACM(CONV[dim], 3, 4, kernel, num_candidates=3, realization=realization, fingerprint=fingerprint,
             dilations=dilations).double()
    assert m.candidate_receptive_fields == [tuple((k - 1) * d + 1 for k, d in zip(kernel, c)) for c in dilations]
    x = torch.randn(2, 3, *size, dtype=torch.float64, requires_grad=True)
    ref = naive_sacm(m, x)
    g = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, [x] + list(m.parameters()), g)
    for form in (m.forward, m.forward_outputs_form, m.forward_kernel_form):
        y = form(x)
        torch.testing.assert_close(y, ref, rtol=1e-9, atol=1e-9)
        for got, want in zip(torch.autograd.grad(y, [x] + list(m.parameters()), g), ref_grads):
            torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-9)


def test_planned_dilations_are_checked():
    """Wrong count, a widened kernel-1 axis and a non-positive dilation are errors naming the fix."""
    with pytest.raises(ValueError, match="K=3 candidates but 2 dilations"):
        SACM(nn.Conv2d, 2, 2, 3, num_candidates=3, dilations=[[1, 1], [2, 2]])
    with pytest.raises(ValueError, match="kernel 1"):
        SACM(nn.Conv3d, 2, 2, [1, 3, 3], num_candidates=2, dilations=[[1, 1, 1], [2, 2, 2]])
    with pytest.raises(ValueError, match="positive integer"):
        SACM(nn.Conv2d, 2, 2, 3, num_candidates=2, dilations=[[1, 1], [0, 2]])


@pytest.mark.parametrize("realization,expected", [("separable", "kernel"), ("dilated", "outputs"),
                                                  ("dense", "outputs"), ("shared", "outputs"), ("split", "kernel"),
                                                  ("bottleneck", "kernel")])
def test_form_choice(realization, expected):
    assert SACM(nn.Conv2d, 4, 4, 3, realization=realization, fingerprint="input").form == expected
    assert SACM(nn.Conv2d, 4, 4, 3, realization=realization, fingerprint="responses").form == "outputs"
    with pytest.raises(ValueError, match="needs fingerprint='input'"):
        SACM(nn.Conv2d, 4, 4, 3, realization=realization, form="kernel")


@pytest.mark.parametrize("realization", ["dilated", "dense", "separable"])
@pytest.mark.parametrize("dim,kernel,size", CASES)
def test_static_init_starts_as_the_first_candidate(realization, dim, kernel, size):
    """init="static": candidates 2..K zero, so y = π_1 · conv_1(x) (+ b), and after an InstanceNorm the block is the
    static conv of the first candidate, whatever the gate says."""
    torch.manual_seed(0)
    m = SACM(CONV[dim], 3, 4, kernel, realization=realization, fingerprint="input", init="static",
             bias=False).double()
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    pi = m.pi(x)
    assert all(float(w.detach().abs().sum()) == 0 for w in list(m.weights)[1:])
    r1 = m.candidate_responses(x)[0]
    torch.testing.assert_close(m(x), m._finish(r1 * pi[:, :1].view(-1, *[1] * (r1.dim() - 1))))
    norm = (nn.InstanceNorm2d if dim == 2 else nn.InstanceNorm3d)(4, eps=1e-12).double()  # scale-free up to eps
    torch.testing.assert_close(norm(m(x)), norm(m._finish(r1)))
    with pytest.raises(ValueError, match="shared"):
        SACM(CONV[dim], 3, 4, kernel, realization="shared", init="static")


@pytest.mark.parametrize("realization", REALIZATIONS)
def test_axis_with_kernel_one_stays_one(realization):
    m = SACM(nn.Conv3d, 3, 2, [1, 3, 3], realization=realization)
    w_hat = m.embedded_kernels()
    assert w_hat.shape[3:] == (1, 7, 7)
    assert m.receptive_fields == [3, 5, 7]
    if realization == "dense":
        assert [tuple(w.shape[2:]) for w in m.weights] == [(1, 3, 3), (1, 5, 5), (1, 7, 7)]


def test_pi_sums_to_one_and_is_float32_under_autocast():
    torch.manual_seed(0)
    m = SACM(nn.Conv2d, 4, 6, 3)
    x = torch.randn(5, 4, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pi = m.attention(m.candidate_responses(x))
        y = m(x)
    assert pi.dtype == torch.float32 and pi.shape == (5, 3)
    torch.testing.assert_close(pi.sum(1), torch.ones(5))
    assert torch.isfinite(y.float()).all()


def test_temperature_controls_sharpness_and_is_a_persistent_buffer():
    torch.manual_seed(0)
    m = SACM(nn.Conv2d, 4, 8, 3)
    with torch.no_grad():
        m.gate[2].weight.mul_(50)  # spread the logits
    x = torch.randn(4, 4, 12, 12)
    responses = m.candidate_responses(x)
    with torch.no_grad():
        m.temperature.fill_(1e4)
        flat = m.attention(responses)
        m.temperature.fill_(1e-3)
        sharp = m.attention(responses)
    assert torch.allclose(flat, torch.full_like(flat, 1 / 3), atol=1e-3)
    assert torch.allclose(sharp.max(1).values, torch.ones(4), atol=1e-3)
    assert "temperature" in m.state_dict()
    m2 = SACM(nn.Conv2d, 4, 8, 3)
    m2.load_state_dict(m.state_dict())
    assert float(m2.temperature) == pytest.approx(1e-3)


@pytest.mark.parametrize("realization", REALIZATIONS)
@pytest.mark.parametrize("dim,kernel,size", CASES)
def test_shapes_and_gradients_batch_size_one(realization, dim, kernel, size):
    m = SACM(CONV[dim], 3, 5, kernel, realization=realization)
    x = torch.randn(1, 3, *size, requires_grad=True)
    y = m(x)
    assert y.shape == (1, 5, *size)
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert all(float(p.grad.abs().sum()) > 0 for p in m.gate.parameters())


def test_split_gives_each_candidate_its_input_group():
    """``split``: K near-equal consecutive groups of the input channels, one static conv's weights in all; its
    kernel form is the per-sample kernel [π_1·W_1 | ... | π_K·W_K]; fewer input channels than K is an error."""
    m = SACM(nn.Conv2d, 32, 16, 3, realization="split", fingerprint="input", bias=False)
    assert [(g.start, g.stop) for g in m.input_groups] == [(0, 11), (11, 22), (22, 32)]
    assert sum(w.numel() for w in m.weights) == nn.Conv2d(32, 16, 3, bias=False).weight.numel()
    x = torch.randn(2, 32, 10, 9)
    pi = m.pi(x)
    w_b = torch.einsum("bk,koi...->boi...", pi, m.embedded_kernels())  # (B, C_out, C_in, 7, 7)
    ref = torch.cat([F.conv2d(x[b:b + 1], w_b[b], padding=3) for b in range(2)])
    torch.testing.assert_close(m(x), ref, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="only 2"):
        SACM(nn.Conv2d, 2, 4, 3, realization="split")


def test_rejects_wrong_dimensionality_and_even_kernels():
    m = SACM(nn.Conv3d, 2, 2, 3)
    with pytest.raises(ValueError, match="3D"):
        m(torch.randn(1, 2, 8, 8))
    with pytest.raises(ValueError, match="odd"):
        SACM(nn.Conv2d, 2, 2, [2, 3])
    with pytest.raises(ValueError, match="realization"):
        SACM(nn.Conv2d, 2, 2, 3, realization="nope")
    with pytest.raises(ValueError, match="fingerprint must be one of"):
        SACM(nn.Conv2d, 2, 2, 3, fingerprint="nope")
    with pytest.raises(ValueError, match="init must be one of"):
        SACM(nn.Conv2d, 2, 2, 3, init="nope")


def _shared_data() -> str:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.environ.get("NNUNET_MSA_SHARED_DATA", os.path.join(here, "..", "shared", "data"))


def test_pi_differs_between_real_samples_after_instance_norm():
    """The fingerprint is taken on the responses, so π adapts even though InstanceNorm equalizes x's statistics."""
    sitk = pytest.importorskip("SimpleITK")
    folder = os.path.join(_shared_data(), "Task04_Hippocampus", "imagesTr")
    if not os.path.isdir(folder):
        pytest.skip(f"shared data not found at {folder}")
    files = sorted(f for f in os.listdir(folder) if f.endswith(".nii.gz") and not f.startswith("."))[:4]
    slices = []
    for f in files:
        a = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(folder, f))).astype(np.float32)
        s = a[a.shape[0] // 2, :32, :32]
        slices.append((s - s.mean()) / (s.std() + 1e-6))
    x = torch.from_numpy(np.stack(slices)[:, None])
    torch.manual_seed(0)
    stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.InstanceNorm2d(8, affine=True), nn.LeakyReLU())
    m = SACM(nn.Conv2d, 8, 8, 3)
    with torch.no_grad():
        pi = m.attention(m.candidate_responses(stem(x)))
    spread = (pi - pi.mean(0, keepdim=True)).abs().max()
    assert spread > 1e-4, pi


@pytest.mark.parametrize("dim,kernel,size", CASES)
def test_split_compiles_fullgraph_and_runs_under_bf16_autocast(dim, kernel, size):
    """The ``split`` kernel form (input groups scaled by π, K group convs summed in place) traces in one graph
    (``torch.compile(fullgraph=True)``, aot_eager: what CUDA users' inductor sees) with the eager values and
    gradients, and stays finite with float32 π under bfloat16 autocast."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    m = SACM(CONV[dim], 6, 5, kernel, realization="split", fingerprint="input")
    x = torch.randn(2, 6, *size, requires_grad=True)
    eager = m(x)
    g_eager = torch.autograd.grad(eager.square().sum(), [x] + list(m.parameters()))
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager")
    out = compiled(x)
    torch.testing.assert_close(out, eager, rtol=1e-5, atol=1e-5)
    for a, b in zip(torch.autograd.grad(out.square().sum(), [x] + list(m.parameters())), g_eager):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
        pi = m.pi(x)
    assert y.dtype == torch.bfloat16 and pi.dtype == torch.float32 and torch.isfinite(y.float()).all()
    torch.testing.assert_close(y.float(), eager.detach(), rtol=0.1, atol=0.1)


@pytest.mark.parametrize("realization", ["bottleneck", "shared", "split"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_autocast_forward_and_backward_stay_close_to_float32(realization, dtype):
    """Under CPU autocast (fp16 and bf16, as on CUDA) the kernel-form and outputs-form realizations give finite
    outputs and gradients within the low precision's error of float32; π stays float32."""
    torch.manual_seed(0)
    m = SACM(nn.Conv2d, 16, 8, 3, realization=realization, fingerprint="input")
    x = torch.randn(2, 16, 12, 10)
    ref = m(x)
    with torch.autocast("cpu", dtype=dtype):
        y = m(x)
        assert m.pi(x).dtype == torch.float32
    y.float().square().mean().backward()
    assert torch.isfinite(y).all() and all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
    assert (y.float() - ref).abs().max() <= 3e-2 * ref.abs().max()
