"""The PNG files of ``nnunet-msa explain`` (matplotlib, Agg backend)."""
from __future__ import annotations

import os
from typing import Dict, List, Optional

import numpy as np

from nnunet_msa.analysis.adaptation_trace import AdaptationTrace


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_receptive_fields(path: str, trace: AdaptationTrace, predicted_area: Dict[int, np.ndarray],
                          reference_area: Optional[Dict[int, np.ndarray]], x_label: str) -> None:
    """One panel per SACM layer: expected receptive field per window (left axis) and each label's cross-section
    area, predicted (solid) and reference (dashed), per window (right axis), against the window's slice."""
    plt = _pyplot()
    layers = list(trace.pi)
    x = trace.window_centres()
    order = np.argsort(x, kind="stable")
    fig, axes = plt.subplots(len(layers), 1, figsize=(9, 2.4 * len(layers)), sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], layers):
        erf = trace.expected_receptive_field(name)
        ax.plot(x[order], erf[order], "k.-", lw=1, ms=3, label="E[rf] = Σ π·rf")
        rfs = trace.receptive_fields[name]
        ax.set_ylim(min(rfs) - 0.2, max(rfs) + 0.2)
        ax.set_ylabel("E[rf] (voxels)")
        ax.set_title(name, fontsize=8, loc="left")
        twin = ax.twinx()
        for i, (label, area) in enumerate(predicted_area.items()):
            twin.plot(x[order], area[order], "-", color=f"C{i}", lw=1, alpha=0.8, label=f"label {label} predicted")
            if reference_area is not None:
                twin.plot(x[order], reference_area[label][order], "--", color=f"C{i}", lw=1, alpha=0.8,
                          label=f"label {label} reference")
        twin.set_ylabel("area (mm²)")
    axes[-1, 0].set_xlabel(x_label)
    handles = axes[0, 0].get_legend_handles_labels()
    twin_handles = axes[0, 0].figure.axes[-1].get_legend_handles_labels() if layers else ([], [])
    fig.legend(handles[0] + twin_handles[0], handles[1] + twin_handles[1], loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_masag_overlays(folder: str, image: np.ndarray, prediction: np.ndarray, label: Optional[np.ndarray],
                        maps: Dict[str, np.ndarray], axis: int, slices: List[int]) -> List[str]:
    """For each slice index (along ``axis`` of the raw arrays): image | prediction | label | every gate's map over
    the image. Every panel has the image's in-plane size. Returns the file names written."""
    plt = _pyplot()
    written = []
    for z in slices:
        take = lambda a: np.take(a, z, axis=axis)  # noqa: E731
        panels = [("image", take(image), None), ("prediction", take(image), take(prediction))]
        if label is not None:
            panels.append(("label", take(image), take(label)))
        panels += [(f"MASAG {n}", take(image), take(m)) for n, m in maps.items()]
        fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.8), squeeze=False)
        for ax, (title, img, over) in zip(axes[0], panels):
            ax.imshow(img, cmap="gray")
            if over is not None and title.startswith("MASAG"):
                lo, hi = np.percentile(over, [1, 99])  # the map's own range: where the gate looks more or less
                ax.imshow(over, cmap="inferno", alpha=0.55, vmin=lo, vmax=max(hi, lo + 1e-6))
            elif over is not None:
                ax.imshow(np.ma.masked_equal(over, 0), cmap="tab10", alpha=0.6, vmin=0, vmax=9, interpolation="nearest")
            if over is not None and title.startswith("MASAG"):
                title += f"\n[{over.min():.2f}, {over.max():.2f}]"
            ax.set_title(title if len(title) < 48 else "…" + title[-47:], fontsize=7)
            ax.axis("off")
        fig.tight_layout()
        name = f"masag_slice_{z:03d}.png"
        fig.savefig(os.path.join(folder, name), dpi=100)
        plt.close(fig)
        written.append(name)
    return written
