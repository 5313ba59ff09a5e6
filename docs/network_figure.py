"""The README's figure of the network: what MSA2 adds to nnU-Net's U-Net, drawn from the built module.

    python docs/network_figure.py [--preset msa2] [--dim 2] [--out docs/network.png] [--json walk.json]
                                  [--plans nnUNetPlans.json --configuration 2d]

Builds ``MSA2UNet`` with a preset's options (``nnunet_msa.network.presets.resolved_options``) the way the trainers
build it (``build_msa2_network`` on an nnU-Net ``ConfigurationManager``), on the meta device (no weights are
allocated), for a representative plan in nnU-Net's plans format (or the given plans file's configuration). Then it
walks the module tree: per encoder stage its features, resolution and convs; per skip whether an ``MSConvBridge``
is on it (and its blocks); per decoder stage whether the skip is fused by ``MASAG`` (or another gate) or by plain
concatenation, and whether the stage's convs are SACM (K candidates, dilations) or static. The figure is drawn from
that walk only, so another preset (``--preset msa2_noBridge``) or other plans give another figure. The walk is
printed as a short summary and, with ``--json``, written as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from fractions import Fraction
from typing import Any, Dict, List, Optional, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "docs", "network.png")

#: representative plans in nnU-Net's plans format (what ``ExperimentPlanner`` writes into
#: ``configurations[name]``): a hippocampus-like 2D plan (1 channel in, 3 classes out) with 5 stages of 32..512
#: features, and a 3D one (nnU-Net caps 3D features at 320)
_COMMON_ARCH = {"conv_bias": True, "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None,
                "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}


def representative_configuration(dim: int) -> Dict[str, Any]:
    """A ``configurations[...]`` entry of an ``nnUNetPlans.json`` for a ``dim``-D plain-encoder U-Net, 5 stages."""
    if dim not in (2, 3):
        raise SystemExit(f"--dim must be 2 or 3, got {dim}")
    features = [32, 64, 128, 256, 512] if dim == 2 else [32, 64, 128, 256, 320]
    patch = [64, 64] if dim == 2 else [64, 64, 64]
    arch = dict(_COMMON_ARCH, n_stages=5, features_per_stage=features,
                conv_op=f"torch.nn.modules.conv.Conv{dim}d", kernel_sizes=[[3] * dim] * 5,
                strides=[[1] * dim] + [[2] * dim] * 4, n_conv_per_stage=[2] * 5, n_conv_per_stage_decoder=[2] * 4,
                norm_op=f"torch.nn.modules.instancenorm.InstanceNorm{dim}d")
    return {"data_identifier": f"nnUNetPlans_{dim}d", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
            "patch_size": patch, "spacing": [1.0] * dim,
            "architecture": {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                             "arch_kwargs": arch,
                             "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}}


def build(preset_name: str, configuration: Dict[str, Any], input_channels: int, num_classes: int):
    """The preset's network on ``configuration`` (deep supervision on, as in training), on the meta device."""
    import torch
    from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

    from nnunet_msa.network.presets import resolved_options
    from nnunet_msa.training.network_from_plans import build_msa2_network

    options = resolved_options(preset_name)
    cm = ConfigurationManager(configuration)
    with torch.device("meta"):
        net = build_msa2_network(cm, input_channels, num_classes, True, **options)
    return net, options


# ----------------------------------------------------------------------------------------------------- the walk
def _per_axis(v, dim: int) -> List[int]:
    return [int(x) for x in v] if isinstance(v, (list, tuple)) else [int(v)] * dim


def _kernel_text(k: Sequence[int]) -> str:
    return "×".join(str(int(i)) for i in k)


def _factor_text(factor: Sequence[Fraction]) -> str:
    if len(set(factor)) == 1:
        f = factor[0]
        return "full" if f == 1 else str(f)
    return "(" + ", ".join(str(f) for f in factor) + ")"


def _conv_info(conv) -> Dict[str, Any]:
    """What one conv of a block is: SACM (K, dilations, ...), another multi-scale conv, or a static conv."""
    from torch import nn
    from nnunet_msa.blocks.sacm import SACM

    if isinstance(conv, SACM):
        return {"kind": "sacm", "kernel": list(conv.kernel_size), "K": conv.num_candidates,
                "dilations": [list(d) for d in conv.dilations],
                "receptive_fields": [list(r) for r in conv.candidate_receptive_fields],
                "realization": conv.realization, "fingerprint": conv.fingerprint_kind}
    if isinstance(conv, nn.modules.conv._ConvNd):
        return {"kind": "static", "kernel": [int(k) for k in conv.kernel_size]}
    return {"kind": type(conv).__name__, "kernel": None}


def _block_convs(module) -> List[Dict[str, Any]]:
    """The main conv of each conv block (``AdaptiveConvNormAct`` or nnU-Net's ``ConvDropoutNormReLU``) in order."""
    from dynamic_network_architectures.building_blocks.simple_conv_blocks import ConvDropoutNormReLU
    from nnunet_msa.blocks.adaptive_conv_block import AdaptiveConvNormAct

    return [_conv_info(m.conv) for m in module.modules() if isinstance(m, (AdaptiveConvNormAct, ConvDropoutNormReLU))]


def walk(net) -> Dict[str, Any]:
    """Per encoder stage, skip and decoder stage, what the built network holds (found in its module tree)."""
    from torch import nn
    from dynamic_network_architectures.building_blocks.residual import BasicBlockD, BottleneckD
    from nnunet_msa.blocks.ms_conv_bridge import MSConvBridge
    from nnunet_msa.blocks.geometry import conv_dim
    from nnunet_msa.network.msa_decoder import MSADecoderStage

    enc, dec = net.encoder, net.decoder
    dim = conv_dim(net.conv_op)
    factor = [Fraction(1)] * dim
    encoder = []
    for i, stage in enumerate(enc.stages):
        stride = _per_axis(enc.strides[i], dim)
        factor = [f / s for f, s in zip(factor, stride)]
        residual_blocks = [m for m in stage.modules() if isinstance(m, (BasicBlockD, BottleneckD))]
        encoder.append({"stage": i, "features": int(enc.output_channels[i]), "stride": stride,
                        "resolution": _factor_text(factor), "kernel": _per_axis(enc.kernel_sizes[i], dim),
                        "blocks": len(residual_blocks) if residual_blocks else len(_block_convs(stage)),
                        "block_kind": "res. block" if residual_blocks else "conv"})
    n_dec = len(dec.stages)
    gates = getattr(dec, "gates", None)
    bridges = getattr(dec, "bridges", None)
    decoder = []
    for s in range(n_dec):  # s = 0: the lowest resolution, as the decoder counts
        level = n_dec - 1 - s  # the encoder stage whose skip it takes
        bridge = bridges[s] if bridges is not None else None
        gate = gates[s] if gates is not None else None
        gate_kind = "none" if gate is None or isinstance(gate, nn.Identity) else type(gate).__name__
        stage = dec.stages[s]
        transp = dec.transpconvs[s]
        decoder.append({
            "stage": s, "skip_from_encoder_stage": level, "features": int(enc.output_channels[level]),
            "resolution": encoder[level]["resolution"],
            "upsample": {"kind": type(transp).__name__, "stride": [int(v) for v in transp.stride]},
            "bridge": ({"blocks": len(bridge.blocks), "convs": _block_convs(bridge)}
                       if isinstance(bridge, MSConvBridge) else None),
            "gate": gate_kind,
            "fusion": (f"{gate_kind} + concat" if gate_kind != "none" else "concat"),
            "convs": _block_convs(stage),
            "residual": bool(getattr(stage, "residual", False)) if isinstance(stage, MSADecoderStage) else False,
            "head": type(dec.seg_layers[s]).__name__ if hasattr(dec, "seg_layers") else None,
        })
    drawn = {"encoder", "transpconvs", "bridges", "gates", "stages", "seg_layers"}
    not_drawn = sorted({n for n, _ in dec.named_children()} - drawn)
    not_drawn += [n for n, _ in dec.named_parameters(recurse=False)]
    if getattr(net, "mlfd", None) is not None:
        not_drawn.insert(0, f"{type(net.mlfd).__name__} (skip redistribution)")
    return {"network": type(net).__name__, "encoder_type": getattr(net, "encoder_type", type(enc).__name__),
            "not_drawn": not_drawn,
            "decoder_type": type(dec).__name__, "dim": dim, "input_channels": int(net.input_channels),
            "num_classes": int(net.num_classes), "deep_supervision": bool(getattr(dec, "deep_supervision", False)),
            "encoder": encoder, "decoder": decoder}


def summary_lines(w: Dict[str, Any], preset_name: str) -> List[str]:
    """The walk as short text lines."""
    lines = [f"{w['network']} (preset {preset_name}), {w['dim']}D, {w['encoder_type']} encoder, "
             f"{w['decoder_type']}, {w['input_channels']} -> {w['num_classes']} classes"]
    for e in w["encoder"]:
        lines.append(f"  encoder {e['stage']}: {e['features']:4d} ch, resolution {e['resolution']:>4}, "
                     f"{e['blocks']}x {e['block_kind']} {_kernel_text(e['kernel'])}, stride {e['stride']}")
    for d in w["decoder"]:
        b = d["bridge"]
        bridge = (f"MSConvBridge({b['blocks']}x {_convs_text(b['convs'])})" if b else "plain skip")
        lines.append(f"  decoder {d['stage']} (skip of encoder {d['skip_from_encoder_stage']}, {d['features']} ch, "
                     f"{d['resolution']}): {bridge}; fusion {d['fusion']}; convs {_convs_text(d['convs'])}"
                     f"{' residual' if d['residual'] and len(d['convs']) > 1 else ''}")
    if w["not_drawn"]:
        lines.append(f"  not drawn: {', '.join(w['not_drawn'])}")
    return lines


def _convs_text(convs: List[Dict[str, Any]]) -> str:
    parts = []
    for c in convs:
        if c["kind"] == "sacm":
            parts.append(f"SACM{_kernel_text(c['kernel'])}(K={c['K']}, d={_dilations_text(c['dilations'])})")
        elif c["kind"] == "static":
            parts.append(f"conv{_kernel_text(c['kernel'])}")
        else:
            parts.append(c["kind"])
    return ", ".join(parts)


def _dilations_text(dilations: List[List[int]]) -> str:
    """"1,2,3" when every candidate has one dilation on all its widened axes, else per-axis tuples."""
    if all(len(set(d)) == 1 for d in dilations):
        return ",".join(str(d[0]) for d in dilations)
    return ",".join("(" + "·".join(str(v) for v in d) + ")" for d in dilations)


# ----------------------------------------------------------------------------------------------------- the figure
UP_COLOR = "#4f6d8f"
KINDS = {  # kind -> (face, edge, legend label, MSA2's part?)
    "encoder": ("#dce6f2", "#4f6d8f", "encoder stage (nnU-Net's PlainConv/ResEnc encoder)", False),
    "static": ("#eef1f5", "#4f6d8f", "static conv stage / concat (nnU-Net's decoder)", False),
    "head": ("#f4f4f4", "#7a7a7a", "1×1 seg head (deep supervision)", False),
    "bridge": ("#cfe8c0", "#3f7d2b", "MSConvBridge: x + F(x), F = SACM blocks", True),
    "masag": ("#ecc6e4", "#8a3b7c", "MASAG gate on the skip, then concat", True),
    "gate": ("#ecc6e4", "#8a3b7c", "skip gate in MASAG's place, then concat", True),
    "sacm": ("#fbd7a8", "#b5651d", "SACM conv stage (adaptive kernel)", True),
    "other_conv": ("#fbd7a8", "#b5651d", "multi-scale conv stage", True),
}


def _conv_stage_kind(convs: List[Dict[str, Any]]) -> str:
    kinds = {c["kind"] for c in convs}
    if "sacm" in kinds:
        return "sacm"
    return "static" if kinds <= {"static"} else "other_conv"


def _conv_stage_text(convs: List[Dict[str, Any]], residual: bool) -> str:
    n = len(convs)
    c = convs[0]
    res = residual and n > 1
    if c["kind"] == "sacm":
        return (f"{n}× SACM conv {_kernel_text(c['kernel'])}\n"
                f"K={c['K']} · dilations {_dilations_text(c['dilations'])}{' · residual' if res else ''}")
    if c["kind"] == "static":
        return f"{n}× conv {_kernel_text(c['kernel'])}\n" + ("static, residual" if res else "(nnU-Net's)")
    return f"{n}× {c['kind']}"


def draw(w: Dict[str, Any], preset_name: str, description: str, out: str, patch: Sequence[int]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch

    enc, dec = w["encoder"], w["decoder"]
    n_enc = len(enc)
    fig = plt.figure(figsize=(10, 6.43), dpi=140)  # 1400 x 900 px
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 16)
    ax.set_ylim(0, 10.3)
    ax.axis("off")
    used_kinds: List[str] = []

    def box(x0, x1, y, h, kind, text, size=8.6, bold_first=True):
        face, edge = KINDS[kind][0], KINDS[kind][1]
        if kind not in used_kinds:
            used_kinds.append(kind)
        ax.add_patch(FancyBboxPatch((x0, y - h / 2), x1 - x0, h, boxstyle="round,pad=0.02,rounding_size=0.12",
                                    fc=face, ec=edge, lw=1.4, zorder=3))
        first, _, rest = text.partition("\n")
        if rest:
            fit(ax.text((x0 + x1) / 2, y + h * 0.17, first, ha="center", va="center", fontsize=size, zorder=4,
                        fontweight="bold" if bold_first else "normal"), x1 - x0)
            fit(ax.text((x0 + x1) / 2, y - h * 0.2, rest, ha="center", va="center", fontsize=size - 1.0, zorder=4,
                        linespacing=1.05), x1 - x0)
        else:
            fit(ax.text((x0 + x1) / 2, y, first, ha="center", va="center", fontsize=size, zorder=4,
                        fontweight="bold" if bold_first else "normal"), x1 - x0)

    renderer = fig.canvas.get_renderer()
    data_per_px = ax.transData.inverted()

    def fit(t, width: float, margin: float = 0.12) -> None:
        """Shrink text ``t`` until it fits ``width`` (data units) less a margin on each side."""
        for _ in range(12):
            ext = t.get_window_extent(renderer)
            w_data = data_per_px.transform((ext.x1, 0))[0] - data_per_px.transform((ext.x0, 0))[0]
            if w_data <= width - 2 * margin or t.get_fontsize() <= 5.5:
                return
            t.set_fontsize(t.get_fontsize() * 0.94)

    def arrow(p, q, color="#444444", lw=1.3, style="-|>", z=2):
        ax.add_patch(FancyArrowPatch(p, q, arrowstyle=style, mutation_scale=11, color=color, lw=lw, zorder=z,
                                     shrinkA=0, shrinkB=0))

    # geometry: rows per encoder level (0 = full resolution at the top), bottleneck at the bottom centre
    top, bottom = 8.25, 2.45
    dy = (top - bottom) / (n_enc - 1)
    row = [top - i * dy for i in range(n_enc)]
    h = min(0.92, dy * 0.64)
    ex0, ex1 = 0.25, 3.15            # encoder column
    bx0, bx1 = 4.55, 7.35            # bridge, on the skip
    fx0, fx1 = 8.45, 10.35           # fusion (MASAG / concat)
    cx0, cx1 = 10.75, 13.85          # decoder convs
    hx0, hx1 = 14.3, 15.75           # heads
    kx0, kx1 = 6.0, 8.6              # bottleneck

    def size_text(i):
        e = enc[i]
        if patch:
            sz, f = list(patch), [Fraction(1)] * len(patch)
            for j in range(i + 1):
                f = [a / s for a, s in zip(f, enc[j]["stride"])]
            return "×".join(str(int(p * a)) for p, a in zip(sz, f))
        return e["resolution"]

    # title
    ax.text(0.25, 10.0, f"{w['network']}, preset “{preset_name}”: what MSA2 adds to nnU-Net's U-Net",
            fontsize=12.5, fontweight="bold", va="center")
    n_bridge = sum(d["bridge"] is not None for d in dec)
    n_gate = sum(d["gate"] != "none" for d in dec)
    n_sacm = sum(_conv_stage_kind(d["convs"]) == "sacm" for d in dec)
    gate_names = sorted({d["gate"] for d in dec if d["gate"] != "none"})
    gate_name = gate_names[0] if len(gate_names) == 1 else "skip gates"
    ax.text(0.25, 9.58, f"{w['dim']}D plan: {w['input_channels']} input channel(s) → {w['num_classes']} classes, "
            f"{n_enc} stages of {enc[0]['features']}–{enc[-1]['features']} features, {w['encoder_type']} encoder, "
            f"{w['decoder_type']}", fontsize=9, va="center", color="#333333")
    ax.text(0.25, 9.28, f"Found in the built network: MSConvBridge on {n_bridge} of {len(dec)} skips · {gate_name} "
            f"in {n_gate} of {len(dec)} decoder stages · SACM convs in {n_sacm} of {len(dec)} decoder stages",
            fontsize=9, va="center", color="#333333")

    # encoder
    for i, e in enumerate(enc):
        bottleneck = i == n_enc - 1
        x0, x1 = (kx0, kx1) if bottleneck else (ex0, ex1)
        name = "bottleneck" if bottleneck else f"encoder {i}"
        box(x0, x1, row[i], h, "encoder",
            f"{name} · {e['features']} ch\n{size_text(i)} ({e['resolution']}) · {e['blocks']}× {e['block_kind']} "
            f"{_kernel_text(e['kernel'])}")
        if i > 0:
            stride = "×".join(str(s) for s in e["stride"])
            if bottleneck:
                p, q = (ex1 - 0.2, row[i - 1] - h / 2), (kx0, row[i] + h * 0.15)
                arrow(p, q)
                ax.text((p[0] + q[0]) / 2 + 0.1, (p[1] + q[1]) / 2 + 0.08, f"stride {stride}", fontsize=7.4,
                        color="#444444", ha="left", va="bottom")
            else:
                xm = (ex0 + ex1) / 2
                arrow((xm, row[i - 1] - h / 2), (xm, row[i] + h / 2))
                ax.text(xm + 0.1, (row[i - 1] + row[i]) / 2, f"stride {stride}", fontsize=7.4, color="#444444",
                        va="center")
    ax.text((ex0 + ex1) / 2, row[0] + h / 2 + 0.12, f"input ({w['input_channels']} ch)", ha="center",
            va="bottom", fontsize=8, color="#444444")

    # decoder, from the lowest resolution up
    for d in dec:
        lvl = d["skip_from_encoder_stage"]
        y = row[lvl]
        # the skip, with or without the bridge
        if d["bridge"] is not None:
            b = d["bridge"]
            arrow((ex1, y), (bx0, y))
            arrow((bx1, y), (fx0, y))
            c0 = b["convs"][0] if b["convs"] else {"kind": "?", "kernel": []}
            block = {"sacm": "SACM block", "static": "conv block"}.get(c0["kind"], f"{c0['kind']} block")
            box(bx0, bx1, y, h, "bridge",
                f"MSConvBridge\n{b['blocks']}× {block} {_kernel_text(c0['kernel'] or [])}, residual")
        else:
            arrow((ex1, y), (fx0, y), color="#777777", lw=1.1)
            ax.text((bx0 + bx1) / 2, y + 0.08, "plain skip (nnU-Net's)", ha="center", va="bottom", fontsize=7.8,
                    color="#555555", style="italic")
        # fusion
        if d["gate"] == "none":
            box(fx0, fx1, y, h, "static", "concat\n[up, skip]")
        elif d["gate"] == "MASAG":
            box(fx0, fx1, y, h, "masag", "MASAG\ngate(skip, up)\n+ concat")
        else:
            box(fx0, fx1, y, h, "gate", f"{d['gate']}\n+ concat")
        arrow((fx1, y), (cx0, y))
        # convs
        kind = _conv_stage_kind(d["convs"])
        box(cx0, cx1, y, h, kind, _conv_stage_text(d["convs"], d["residual"]))
        # head
        if d["head"] is not None and (w["deep_supervision"] or lvl == 0):
            arrow((cx1, y), (hx0, y), color="#777777", lw=1.0)
            box(hx0, hx1, y, h * 0.7, "head", f"1×1 → {w['num_classes']}\n{'output' if lvl == 0 else 'deep sup.'}",
                size=8.0, bold_first=False)
        # the upsampling into this stage, from the stage below (or the bottleneck)
        up = "×".join(str(s) for s in d["upsample"]["stride"])
        if lvl == n_enc - 2:
            p, q = (kx1, row[lvl + 1]), ((fx0 + fx1) / 2, y - h / 2)
            ax.text(p[0] - 0.1, (p[1] + q[1]) / 2 + 0.12, f"up {up}", fontsize=7.4, color=UP_COLOR, ha="right",
                    va="center")
        else:
            p, q = (cx0 + 0.45, row[lvl + 1] + h / 2), ((fx0 + fx1) / 2, y - h / 2)
            ax.text(p[0] + 0.12, (p[1] + q[1]) / 2, f"up {up}", fontsize=7.4, color=UP_COLOR, ha="left",
                    va="center")
        arrow(p, q, color=UP_COLOR)

    # legend: nnU-Net's parts vs MSA2's parts, the kinds the walk found
    encoder_name = {"plain": "PlainConvEncoder", "residual": "ResidualEncoder"}.get(w["encoder_type"],
                                                                                  w["encoder_type"])
    bridge_convs = {c["kind"] for d in dec if d["bridge"] for c in d["bridge"]["convs"]}
    bridge_f = "SACM blocks" if bridge_convs == {"sacm"} else ("static convs" if bridge_convs == {"static"}
                                                                else "conv blocks")
    label = lambda k: (f"encoder stage (nnU-Net's {encoder_name})" if k == "encoder" else  # noqa: E731
                       f"MSConvBridge: x + F(x), F = {bridge_f}" if k == "bridge" else KINDS[k][2])
    handles = [Patch(fc=KINDS[k][0], ec=KINDS[k][1], label=label(k)) for k in used_kinds if not KINDS[k][3]]
    handles.append(Line2D([], [], color=UP_COLOR, lw=1.3, marker=">", markersize=4,
                          label=f"transposed conv, up {'×'.join(map(str, dec[0]['upsample']['stride']))} "
                                f"(nnU-Net's)"))
    msa = [Patch(fc=KINDS[k][0], ec=KINDS[k][1], label=label(k)) for k in used_kinds if KINDS[k][3]]
    title_nn = Patch(fc="none", ec="none", label="nnU-Net's parts")
    title_msa = Patch(fc="none", ec="none", label="MSA2's parts" if msa else "MSA2's parts: none in this network")
    rows = max(len(handles), len(msa))
    blank = lambda: Patch(fc="none", ec="none", label=" ")  # noqa: E731
    column_nn = [title_nn, *handles] + [blank() for _ in range(rows - len(handles))]
    column_msa = [title_msa, *msa] + [blank() for _ in range(rows - len(msa))]
    leg = ax.legend(handles=column_nn + column_msa, ncol=2, loc="lower left", bbox_to_anchor=(0.012, 0.04),
                    fontsize=7.6, frameon=True, framealpha=1.0, edgecolor="#bbbbbb", handlelength=1.6,
                    handleheight=1.0, borderpad=0.5, labelspacing=0.3, columnspacing=1.2)
    for text, hnd in zip(leg.get_texts(), column_nn + column_msa):
        if hnd in (title_nn, title_msa):
            text.set_fontweight("bold")

    # SACM inset: the candidates of the first SACM the walk found, drawn from its dilations
    sacm = next((c for d in dec for c in ([*(d["bridge"] or {}).get("convs", [])] + d["convs"])
                 if c["kind"] == "sacm"), None)
    if sacm is not None:
        _sacm_inset(fig, ax, sacm, dec)
    else:
        ax.text(15.75, 1.2, "no SACM in this network:\nstatic convs of the planned kernel size", ha="right",
                va="center", fontsize=8.4, color="#555555", style="italic")
    extra = f"; not drawn: {', '.join(w['not_drawn'])}" if w["not_drawn"] else ""
    ax.text(0.25, 0.2, f"Drawn by docs/network_figure.py from the module tree of the built network "
            f"({description}){extra}", fontsize=7.4, color="#555555", va="center")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=140, facecolor="white")
    plt.close(fig)


def _sacm_inset(fig, ax, sacm: Dict[str, Any], dec: List[Dict[str, Any]]) -> None:
    """K small kernel grids (the taps of each candidate at its dilation, in-plane) and SACM's one-line definition."""
    from matplotlib.patches import FancyBboxPatch, Rectangle

    K, dil, kern = sacm["K"], sacm["dilations"], sacm["kernel"]
    x0, y0, x1, y1 = 9.45, 0.42, 15.75, 2.75  # data coordinates of the panel
    ax.add_patch(FancyBboxPatch((x0, y0), x1 - x0, y1 - y0, boxstyle="round,pad=0.02,rounding_size=0.12",
                                fc="#fff7ec", ec=KINDS["sacm"][1], lw=1.2, zorder=1))
    ax.text(x0 + 0.15, y1 - 0.2, "SACM, the adaptive convolution", fontsize=8.8, fontweight="bold", va="center")
    same = all(_dilations_text(c["dilations"]) == _dilations_text(dil) for d in dec
               for c in ([*(d["bridge"] or {}).get("convs", [])] + d["convs"]) if c["kind"] == "sacm")
    stats = "the input's statistics" if sacm["fingerprint"] == "input" else "the candidates' response statistics"
    shared = "; one shared kernel" if sacm["realization"] == "shared" else ""
    lines = (f"kernel = per-sample softmax mixture of K={K} candidates\n"
             f"(dilations {_dilations_text(dil)}{shared}{'' if same else '; as planned per stage'}),\n"
             f"weights π from {stats}")
    ax.text(x0 + 0.15, y1 - 0.38, lines, fontsize=7.8, va="top", linespacing=1.25)
    # the grids: in-plane (first two axes) taps of each candidate on the largest candidate's grid
    axes2 = [0, 1] if len(kern) >= 2 else [0, 0]
    rf = [[(kern[a] - 1) * d[a] + 1 for a in axes2] for d in dil]
    big = [max(r[i] for r in rf) for i in range(2)]
    cell = 0.84 / max(big)
    gy = y0 + 0.1
    step = cell * big[1] + 0.95
    gx = (x0 + x1) / 2 - (K * step - 0.95) / 2
    sub = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
    for j, d in enumerate(dil):
        ox = gx + j * step
        for r in range(big[0]):
            for c in range(big[1]):
                ax.add_patch(Rectangle((ox + c * cell, gy + r * cell), cell, cell, fc="white", ec="#cccccc",
                                       lw=0.4, zorder=2))
        for tr in range(kern[axes2[0]]):
            for tc in range(kern[axes2[1]]):
                r = (big[0] - rf[j][0]) // 2 + tr * d[axes2[0]]
                c = (big[1] - rf[j][1]) // 2 + tc * d[axes2[1]]
                ax.add_patch(Rectangle((ox + c * cell, gy + r * cell), cell, cell, fc=KINDS["sacm"][1], ec="white",
                                       lw=0.4, zorder=3))
        ax.text(ox + cell * big[1] + 0.08, gy + cell * big[0] / 2,
                f"π{str(j + 1).translate(sub)}\nd={_dilations_text([d])}", ha="left", va="center", fontsize=7.4,
                linespacing=1.1)
        if j < K - 1:
            ax.text(ox + cell * big[1] + 0.72, gy + cell * big[0] / 2, "+", ha="center", va="center", fontsize=11)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="msa2", help="network preset (plans/*.json), default msa2")
    parser.add_argument("--dim", type=int, default=2, choices=(2, 3), help="representative 2D or 3D plan")
    parser.add_argument("--plans", default=None, help="an nnUNetPlans.json to take the configuration from instead")
    parser.add_argument("--configuration", default="2d", help="configuration of --plans (default 2d)")
    parser.add_argument("--input-channels", type=int, default=1)
    parser.add_argument("--num-classes", type=int, default=3)
    parser.add_argument("--out", default=DEFAULT_OUT, help="PNG path (default docs/network.png)")
    parser.add_argument("--json", default=None, help="also write the walk as JSON to this path")
    args = parser.parse_args(argv)

    if args.plans:
        from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

        with open(args.plans) as f:
            plans = json.load(f)
        # PlansManager resolves a configuration's "inherits_from"
        configuration = PlansManager(plans).get_configuration(args.configuration).configuration
        description = f"{os.path.basename(args.plans)}, configuration {args.configuration}"
    else:
        configuration = representative_configuration(args.dim)
        patch = "×".join(map(str, configuration["patch_size"]))
        description = f"representative {args.dim}D nnU-Net plan, patch {patch}"
    net, options = build(args.preset, configuration, args.input_channels, args.num_classes)
    w = walk(net)
    w["preset"], w["options"], w["plan"] = args.preset, options, description
    print("\n".join(summary_lines(w, args.preset)))
    draw(w, args.preset, description, args.out, configuration.get("patch_size"))
    print(f"figure: {args.out}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(w, f, indent=1, default=str)
        print(f"walk: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
