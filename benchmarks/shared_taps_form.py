"""``python -m benchmarks.shared_taps_form``: a rejected realization, kept measurable (issue 15, 2026-12-06).

The shared-kernel SACM (``realization="shared"``: one k-tap kernel W at the K dilations, mixed per sample; the most
accurate MSA2 row of the protocol) costs K convolutions in the outputs form. Because W is shared, the mixture can be
moved onto the input, y_b = Σ_t W_t · z_{b,t} with z_{b,t} = Σ_k π_bk · S_{t·d_k}(x_b) (t: the kernel's taps, S a
shift), which is ONE matrix product of a static conv's FLOPs plus K·|taps| element-wise passes over the input
(forward, and as many for each of ∂x and ∂π in backward). This script checks that form against the outputs form
in float64 (value and ``gradcheck``) and times forward + backward of both against one static conv on the layer
shapes of the default's SACM convs (hippocampus 2d at batch 32, hippocampus 3d_fullres at batch 2).
Prints a markdown table and writes a bar plot (``--out``).

Measured on 2 cores (AMD EPYC, idle, 2026-12-06): the taps form is no cheaper than the outputs form (2.6-3.6×
a static conv in 2D, 3.9-5.8× in 3D, against 2.7-3.4×): on CPU the element-wise passes cost what the two saved
convolutions cost (profile: the three matrix products 1.3× one static conv's forward and backward, the
element-wise passes another 1.6×). ``docs/cost.md``, "Tried and rejected".
"""
from __future__ import annotations

import argparse
import itertools
import math
import os
import time
from typing import Callable, Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F

Dilations = List[Tuple[int, ...]]


def _taps(kernel: Sequence[int]) -> List[Tuple[int, ...]]:
    return list(itertools.product(*[range(-(k // 2), k // 2 + 1) for k in kernel]))


def _pads(kernel: Sequence[int], dilations: Dilations) -> List[int]:
    return [(k // 2) * max(d[ax] for d in dilations) for ax, k in enumerate(kernel)]


def _shifted(xp: torch.Tensor, pads: Sequence[int], spatial: Sequence[int], tap, d) -> torch.Tensor:
    """S_{tap·d}(x) as a view of the padded x: (B, C, *spatial)."""
    index = [slice(None), slice(None)]
    for ax, size in enumerate(spatial):
        start = pads[ax] + tap[ax] * d[ax]
        index.append(slice(start, start + size))
    return xp[tuple(index)]


def _pad(x: torch.Tensor, pads: Sequence[int]) -> torch.Tensor:
    return F.pad(x, [p for p in reversed(pads) for _ in range(2)])


def mixed_taps(x: torch.Tensor, pi: torch.Tensor, kernel: Sequence[int], dilations: Dilations) -> torch.Tensor:
    """z: (B, T, C, *S), z[:, t] = Σ_k π_k · S_{t·d_k}(x). x: (B, C, *S), π: (B, K)."""
    spatial, pads = x.shape[2:], _pads(kernel, dilations)
    xp = _pad(x, pads)
    p = pi.to(x.dtype).view(pi.shape[0], pi.shape[1], *([1] * (x.dim() - 1)))
    taps = _taps(kernel)
    z = x.new_empty((x.shape[0], len(taps)) + tuple(x.shape[1:]))
    for t, tap in enumerate(taps):
        for k, d in enumerate(dilations):
            view = _shifted(xp, pads, spatial, tap, d)
            if k == 0:
                torch.mul(view, p[:, 0], out=z[:, t])
            else:
                z[:, t].addcmul_(view, p[:, k])
    return z


def _flat_weight(w: torch.Tensor) -> torch.Tensor:
    """(C_out, C, *k) -> (C_out, T·C), taps outer, channels inner (the layout of z)."""
    c_out, c_in, t = w.shape[0], w.shape[1], math.prod(w.shape[2:])
    return w.reshape(c_out, c_in, t).transpose(1, 2).reshape(c_out, t * c_in)


class SharedTapsConv(torch.autograd.Function):
    """y = Σ_k π_k · conv_{d_k}(x, W) as one matrix product over ``mixed_taps`` (keeps z for backward)."""

    @staticmethod
    def forward(ctx, x, w, pi, dilations):
        kernel, spatial = tuple(w.shape[2:]), x.shape[2:]
        z = mixed_taps(x, pi, kernel, dilations)
        b, n = x.shape[0], math.prod(spatial)
        y = torch.matmul(_flat_weight(w), z.view(b, -1, n)).view(b, w.shape[0], *spatial)
        ctx.dilations = dilations
        ctx.save_for_backward(x, w, pi, z)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, w, pi, z = ctx.saved_tensors
        dilations, kernel, spatial = ctx.dilations, tuple(w.shape[2:]), x.shape[2:]
        b, n, c_out, c_in = x.shape[0], math.prod(spatial), w.shape[0], w.shape[1]
        gy2 = gy.reshape(b, c_out, n)
        gw = torch.einsum("bon,bcn->oc", gy2, z.view(b, -1, n))
        gw = gw.view(c_out, -1, c_in).transpose(1, 2).reshape(w.shape)
        gz = torch.matmul(_flat_weight(w).t(), gy2).view(b, -1, c_in, *spatial)
        pads = _pads(kernel, dilations)
        xp, gxp = _pad(x, pads), x.new_zeros(_pad(x, pads).shape)
        p = pi.to(x.dtype).view(b, pi.shape[1], *([1] * (x.dim() - 1)))
        gpi = x.new_zeros(pi.shape)
        for t, tap in enumerate(_taps(kernel)):
            for k, d in enumerate(dilations):
                gpi[:, k] += (gz[:, t] * _shifted(xp, pads, spatial, tap, d)).flatten(1).sum(1)
                _shifted(gxp, pads, spatial, tap, d).addcmul_(gz[:, t], p[:, k])
        inner = [slice(None), slice(None)] + [slice(pads[ax], pads[ax] + s) for ax, s in enumerate(spatial)]
        return gxp[tuple(inner)], gw, gpi.to(pi.dtype), None


def outputs_form(x: torch.Tensor, w: torch.Tensor, pi: torch.Tensor, dilations: Dilations) -> torch.Tensor:
    """SACM's outputs form of ``shared``: K dilated convolutions with the same W, mixed per sample."""
    conv = F.conv2d if x.dim() == 4 else F.conv3d
    y = None
    for k, d in enumerate(dilations):
        pad = tuple((kk // 2) * dd for kk, dd in zip(w.shape[2:], d))
        r = conv(x, w, padding=pad, dilation=d) * pi[:, k].view(-1, *([1] * (x.dim() - 1)))
        y = r if y is None else y + r
    return y


def check() -> None:
    """The taps form equals the outputs form in float64, 2D, 3D, anisotropic kernels and uneven dilations."""
    torch.manual_seed(0)
    cases = [((2, 5, 9, 8), (4, 5, 3, 3), [(1, 1), (2, 2), (3, 3)]),
             ((2, 3, 9, 8), (4, 3, 3, 3), [(1, 1), (2, 3), (4, 2)]),
             ((1, 1, 3, 4, 3), (2, 1, 1, 3, 3), [(1, 1, 1), (1, 2, 2), (1, 3, 3)]),
             ((1, 1, 3, 4, 3), (2, 1, 3, 3, 3), [(1, 1, 1), (2, 2, 2), (3, 3, 3)])]
    for xs, ws, dil in cases:
        x = torch.randn(*xs, dtype=torch.float64, requires_grad=True)
        w = torch.randn(*ws, dtype=torch.float64, requires_grad=True)
        pi = torch.softmax(torch.randn(xs[0], len(dil), dtype=torch.float64), 1).detach().requires_grad_()
        err = (SharedTapsConv.apply(x, w, pi, dil) - outputs_form(x, w, pi, dil)).abs().max().item()
        assert err < 1e-10, f"taps form differs from the outputs form by {err} for {xs}, {ws}, {dil}"
        assert torch.autograd.gradcheck(lambda a, b, c: SharedTapsConv.apply(a, b, c, dil), (x, w, pi))
    print(f"float64: taps form == outputs form (values and gradcheck) on {len(cases)} cases")


#: (batch, C_in, C_out, spatial): the SACM convs of the default on hippocampus 2d (batch 32) and 3d_fullres (batch 2)
SHAPES = [(32, 256, 128, (14, 10)), (32, 128, 128, (14, 10)), (32, 128, 64, (28, 20)), (32, 64, 64, (28, 20)),
          (2, 256, 128, (10, 14, 10)), (2, 128, 64, (20, 28, 20))]


def measure(repeats: int) -> List[Dict]:
    rows = []
    for b, c_in, c_out, spatial in SHAPES:
        n = len(spatial)
        dil = [(d,) * n for d in (1, 2, 3)]
        x = torch.randn(b, c_in, *spatial, requires_grad=True)
        w = torch.randn(c_out, c_in, *([3] * n), requires_grad=True)
        pi = torch.softmax(torch.randn(b, 3), 1).requires_grad_()
        conv = F.conv2d if n == 2 else F.conv3d
        forms: Dict[str, Callable[[], torch.Tensor]] = {
            "static conv": lambda: conv(x, w, padding=1),
            "outputs form": lambda: outputs_form(x, w, pi, dil),
            "taps form": lambda: SharedTapsConv.apply(x, w, pi, dil)}
        times: Dict[str, List[float]] = {k: [] for k in forms}
        for _ in range(repeats):  # interleaved rounds
            for name, f in forms.items():
                start = time.perf_counter()
                f().square().mean().backward()
                times[name].append(time.perf_counter() - start)
        med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
        rows.append({"shape": f"B{b} {c_in}->{c_out} {'x'.join(map(str, spatial))}", **med})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=os.path.join("benchmarks", "out", "shared_taps_form.png"))
    args = parser.parse_args()
    check()
    rows = measure(args.repeats)
    print("\n| layer (batch, channels, size) | static conv ms | outputs form | taps form |\n|---|---|---|---|")
    for r in rows:
        s = r["static conv"]
        print(f"| {r['shape']} | {s * 1e3:.0f} | {r['outputs form'] / s:.2f}x | {r['taps form'] / s:.2f}x |")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 3.5))
    width = 0.38
    for i, form in enumerate(("outputs form", "taps form")):
        ax.bar([j + i * width for j in range(len(rows))], [r[form] / r["static conv"] for r in rows], width,
               label=form)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks([j + width / 2 for j in range(len(rows))], [r["shape"] for r in rows], rotation=15, fontsize=7)
    ax.set_ylabel("forward + backward / static conv")
    ax.legend()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"plot: {args.out}")


if __name__ == "__main__":
    main()
