"""Convolutions with a different kernel for every sample of the batch (SACM's kernel form).

``per_sample_conv`` (dense kernels): the batch is folded into the channels, (1, B·C_in, *S), and convolved with the
(B·C_out, C_in / g, *R) stack in B·g groups, so sample b only meets its own kernel.

``per_sample_depthwise_conv`` (depthwise kernels, (B, C, *R)): the same fold, with a hand-written backward. PyTorch's
CPU backward of such a convolution computes the kernel gradient through oneDNN's backward-weights primitive, which
for a batch of one and B·C groups runs 10-45x slower than the forward (measured on 2D hippocampus and 3D shapes: 76
ms against 1.7 ms). Both gradients are forward depthwise convolutions instead:

    ∂L/∂x   = conv(∂L/∂y, flip(w))                 (stride 1, 'same' padding, odd kernel)
    ∂L/∂w_bc = conv(pad(x_bc), ∂L/∂y_bc)            (the output gradient as the kernel: an R-sized output)

3D kernels of size 1 on the first axis (anisotropic (1, k, k) plans) run as 2D convolutions of the slices (depth
folded into the batch, every slice of a sample with its sample's kernel), channels-last, with oneDNN's own backward
(``_slicewise_grads``): with the slices as a batch its backward-weights is fast again (312 ms for a whole forward and
backward of a 1×64×10×128×112 ACDC map, against 626 ms by the forward-conv route).

``embed_dilated``, ``candidate_taps`` and ``_candidate_grad`` place dilated candidates on the mixed kernel's grid and
take a grid gradient back to each candidate's taps (SACM ``separable`` in kernel form: ``separable_mixture``).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from nnunet_msa.blocks.fast_conv import fast_conv


def mix_kernels(pi: torch.Tensor, w_hat: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The per-sample kernels Σ_k π_bk Ŵ_k (eq. of SACM's kernel form): pi (B, K), w_hat (K, *W) -> (B, *W) in
    ``dtype``. Synthesized in float32 (or wider) with autocast off, so that under bfloat16/float16 autocast only the
    convolution runs in the low precision, as a static conv's float32 weights would."""
    K = w_hat.shape[0]
    wide = torch.promote_types(w_hat.dtype, torch.float32)
    with torch.autocast(device_type=pi.device.type, enabled=False):
        w_b = pi.to(wide) @ w_hat.to(wide).reshape(K, -1)
    return w_b.reshape((pi.shape[0],) + tuple(w_hat.shape[1:])).to(dtype)

_CONV_FN = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CHANNELS_LAST = {2: torch.channels_last, 3: torch.channels_last_3d}
#: dimensionalities whose folded (1, B·C, *S) convolution runs channels-last
CHANNELS_LAST_DIMS = {3}


def per_sample_conv(x: torch.Tensor, kernels: torch.Tensor, padding: Sequence[int], groups: int = 1) -> torch.Tensor:
    """'Same' stride-1 conv of each sample x[b] with kernels[b]: (B, C_in, *S), (B, C_out, C_in / groups, *R) ->
    (B, C_out, *S). ``padding`` per axis, (R - 1) / 2 for odd R. Depthwise kernels (groups = C_in = C_out) go to
    ``per_sample_depthwise_conv``."""
    B, c_in = x.shape[:2]
    c_out = kernels.shape[1]
    if kernels.shape[0] != B:
        raise ValueError(f"{kernels.shape[0]} kernels for a batch of {B}")
    if groups == c_in == c_out and kernels.shape[2] == 1:
        return per_sample_depthwise_conv(x, kernels[:, :, 0])
    xf = x.reshape(1, B * c_in, *x.shape[2:])  # a view for a contiguous x
    wf = kernels.reshape(B * c_out, *kernels.shape[2:])
    y = fast_conv(xf, wf.to(x.dtype), None, list(padding), 1, B * groups)
    return y.reshape(B, c_out, *x.shape[2:])


def _recording(*tensors: torch.Tensor) -> bool:
    """Whether autograd records an op on these tensors (training); oneDNN's own backward of a depthwise conv is
    10-45x slower than its forward on CPU (a batch-1 3D 7x7x7 kernel gradient took 10 s on an ACDC map)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _slicewise(x: torch.Tensor, w: torch.Tensor) -> bool:
    return x.dim() == 5 and w.shape[2] == 1


def _slicewise_forward(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """(B, C, D, H, W) with kernels (B, C, 1, kh, kw) as (D, B·C, H, W) 2D slices, each sample's kernel per group."""
    B, C, D, H, W = x.shape
    R = w.shape[2:]
    xs = x.permute(2, 0, 1, 3, 4).reshape(D, B * C, H, W).contiguous(memory_format=torch.channels_last)
    y = F.conv2d(xs, w.reshape(B * C, 1, R[1], R[2]), None, 1, [(R[1] - 1) // 2, (R[2] - 1) // 2], 1, B * C)
    return y.reshape(D, B, C, H, W).permute(1, 2, 0, 3, 4).contiguous()


def _slicewise_grads(x: torch.Tensor, gy: torch.Tensor, w: torch.Tensor, need_x: bool = True):
    """∂L/∂x (B, C, D, H, W) (or None) and ∂L/∂w (B, C, 1, kh, kw) of ``_slicewise_forward``: oneDNN's backward of
    the slice-batched 2D conv (fast there: the slices are its batch), without autograd keeping the slices."""
    B, C, D, H, W = x.shape
    R = w.shape[2:]
    xs = x.permute(2, 0, 1, 3, 4).reshape(D, B * C, H, W).contiguous(memory_format=torch.channels_last)
    gs = gy.permute(2, 0, 1, 3, 4).reshape(D, B * C, H, W).contiguous(memory_format=torch.channels_last)
    ws = w.reshape(B * C, 1, R[1], R[2])
    gx, gw, _ = torch.ops.aten.convolution_backward(gs, xs, ws, None, [1, 1], [(R[1] - 1) // 2, (R[2] - 1) // 2],
                                                    [1, 1], False, [0, 0], B * C, [need_x, True, False])
    if gx is not None:
        gx = gx.reshape(D, B, C, H, W).permute(1, 2, 0, 3, 4).contiguous()
    return gx, gw.reshape(B, C, *R)


def candidate_taps(g: torch.Tensor, k: Sequence[int], d: Sequence[int]) -> torch.Tensor:
    """The entries of a gradient on the embedded grid (B, C, *R) at one candidate's taps (kernel k, dilation d,
    centred as ``embed_dilated`` places it): (B, C, *k)."""
    index = [slice(None), slice(None)]
    for ax, (kk, dd) in enumerate(zip(k, d)):
        extent = (kk - 1) * dd + 1
        start = (g.shape[2 + ax] - extent) // 2
        index.append(slice(start, start + extent, dd))
    return g[tuple(index)]


def _depthwise_forward(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """y_bc = x_bc * w_bc ('same', stride 1): x (B, C, *S), w (B, C, *R) -> (B, C, *S), contiguous."""
    B, C = x.shape[:2]
    R = w.shape[2:]
    dim = x.dim() - 2
    xf = x.reshape(1, B * C, *x.shape[2:])
    if dim in CHANNELS_LAST_DIMS:
        xf = xf.contiguous(memory_format=_CHANNELS_LAST[dim])
    y = _CONV_FN[dim](xf, w.reshape(B * C, 1, *R), None, 1, [(r - 1) // 2 for r in R], 1, B * C)
    return y.reshape(B, C, *x.shape[2:]) if y.is_contiguous() else y.contiguous().reshape(B, C, *x.shape[2:])


def _depthwise_weight_grad(x: torch.Tensor, gy: torch.Tensor, R: Sequence[int]) -> torch.Tensor:
    """∂L/∂w (B, C, *R) of ``_depthwise_forward``: each (b, c)'s padded input correlated with its output gradient,
    as one forward depthwise conv whose kernels are the output gradients."""
    B, C = x.shape[:2]
    pads = []
    for r in reversed(R):
        pads += [(r - 1) // 2] * 2
    xp = F.pad(x.contiguous(), pads)
    dim = x.dim() - 2
    g = _CONV_FN[dim](xp.reshape(1, B * C, *xp.shape[2:]), gy.contiguous().reshape(B * C, 1, *gy.shape[2:]),
                      None, 1, 0, 1, B * C)
    return g.reshape(B, C, *R)


class _PerSampleDepthwise(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        w = w.to(x.dtype)
        ctx.save_for_backward(x, w)
        return _depthwise_forward(x, w)

    @staticmethod
    def backward(ctx, gy: torch.Tensor):
        x, w = ctx.saved_tensors
        gy = gy.to(x.dtype)
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = _depthwise_forward(gy, w.flip(list(range(2, w.dim()))))
        if ctx.needs_input_grad[1]:
            gw = _depthwise_weight_grad(x, gy, w.shape[2:])
        return gx, gw


def per_sample_depthwise_conv(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """'Same' stride-1 depthwise conv of every sample with its own kernels: x (B, C, *S), w (B, C, *R) with odd R
    -> (B, C, *S) in x's dtype."""
    if w.shape[:2] != x.shape[:2] or w.dim() != x.dim():
        raise ValueError(f"per-sample depthwise kernels {tuple(w.shape)} do not fit the input {tuple(x.shape)}")
    if any(r % 2 == 0 for r in w.shape[2:]):
        raise ValueError(f"per-sample depthwise kernels need odd sizes, got {tuple(w.shape[2:])}")
    if _slicewise(x, w):
        return _slicewise_forward(x, w.to(x.dtype))
    if x.shape[0] == 1 and not _recording(x, w):  # one sample, prediction: a plain depthwise conv (fast_conv)
        return fast_conv(x, w[0].unsqueeze(1).to(x.dtype), None, [(r - 1) // 2 for r in w.shape[2:]], 1, x.shape[1])
    return _PerSampleDepthwise.apply(x, w)


def embed_dilated(weights: Sequence[torch.Tensor], dilations: Sequence[Sequence[int]]) -> torch.Tensor:
    """The candidates (C, 1, *k) at their dilations, each placed centred in the largest grid: (K, C, 1, *R)."""
    R = [max((w.shape[2 + ax] - 1) * d[ax] + 1 for w, d in zip(weights, dilations))
         for ax in range(weights[0].dim() - 2)]
    out = weights[0].new_zeros((len(weights),) + tuple(weights[0].shape[:2]) + tuple(R))
    for j, (w, d) in enumerate(zip(weights, dilations)):
        index = [j, slice(None), slice(None)]
        for ax in range(len(R)):
            extent = (w.shape[2 + ax] - 1) * d[ax] + 1
            start = (R[ax] - extent) // 2
            index.append(slice(start, start + extent, d[ax]))
        out[tuple(index)] = w
    return out


def _candidate_grad(x: torch.Tensor, gy: torch.Tensor, k: Sequence[int], d: Sequence[int]) -> torch.Tensor:
    """G[b, c, i] = Σ_p x_pad[b, c, p + d·i] · ∂L/∂y[b, c, p]: the gradient of a per-sample depthwise kernel at the
    taps of one dilated candidate only, (B, C, *k), as a strided forward depthwise conv (output gradient as kernel)."""
    B, C = x.shape[:2]
    dim = x.dim() - 2
    pads = []
    for kk, dd in zip(reversed(k), reversed(d)):
        pads += [(kk - 1) // 2 * dd] * 2
    xp = F.pad(x, pads).reshape(1, B * C, *[s + 2 * ((kk - 1) // 2 * dd) for s, kk, dd in zip(x.shape[2:], k, d)])
    g = _CONV_FN[dim](xp, gy.reshape(B * C, 1, *gy.shape[2:]), None, list(d), 0, 1, B * C)
    return g.reshape(B, C, *k)
