"""``nnunet-msa explain -m MODEL_FOLDER -i CASE [-l LABEL] [-f FOLD] -o OUT``: where SACM widens and narrows its
receptive field along z, and where MASAG looks, for one raw case and a trained ``nnUNetTrainerMSA2*`` model.

Writes to OUT:
- ``receptive_field.png``: per SACM layer, the expected receptive field Σ_k π_k · rf_k per slice (2d models) or per
  sliding-window patch (3d models, at the patch centre) against the predicted (and, with ``-l``, reference)
  cross-section area of each label;
- ``masag_slice_<z>.png``: for a few slices, image | prediction | label | each MASAG gate's recalibration map over
  the image, in the image's own voxel grid;
- ``explain.json``: π per window and layer, the candidates' receptive fields, expected receptive field, areas, and
  per layer Spearman's ρ between expected receptive field and total foreground area (also printed).
The model, its plans and its weights are untouched; observation is on only while this command runs.
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Dict, List, Optional

import numpy as np


def add_explain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--model", required=True,
                        help="trained model folder (nnUNet_results/DatasetX/TRAINER__PLANS__CONFIG)")
    parser.add_argument("-i", "--input", required=True, nargs="+",
                        help="the case's image file(s), one per channel in channel order (CASE_0000, CASE_0001, ...)")
    parser.add_argument("-l", "--label", default=None, help="reference segmentation of the case (optional)")
    parser.add_argument("-o", "--output", required=True, help="output folder (created)")
    parser.add_argument("-f", "--fold", default="0", help="fold to explain (default 0; 'all' for fold_all)")
    parser.add_argument("-chk", "--checkpoint", default="checkpoint_final.pth", help="checkpoint file name")
    parser.add_argument("--slices", type=int, default=3, help="number of slices with MASAG overlays (default 3)")
    parser.add_argument("-device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")


def _to_original_space(volume: np.ndarray, predictor, properties: dict) -> np.ndarray:
    """(Z, Y, X) map in preprocessed space -> the raw image's array (as nnU-Net's reader returns it): resampled
    like nnU-Net resamples probabilities, put back into the crop's bounding box, transposed back."""
    from acvl_utils.cropping_and_padding.bounding_boxes import insert_crop_into_image

    pm, cm = predictor.plans_manager, predictor.configuration_manager
    spacing_t = [properties["spacing"][i] for i in pm.transpose_forward]
    before = properties["shape_after_cropping_and_before_resampling"]
    current = cm.spacing if len(cm.spacing) == len(before) else [spacing_t[0], *cm.spacing]
    resampled = np.asarray(cm.resampling_fn_probabilities(volume[None].astype(np.float32), before, current,
                                                          spacing_t))[0]
    full = np.zeros(properties["shape_before_cropping"], dtype=np.float32)
    full = insert_crop_into_image(full, resampled, properties["bbox_used_for_cropping"])
    return np.asarray(full).transpose(pm.transpose_backward)


def _finite_or_none(value: float) -> Optional[float]:
    """JSON has no NaN: a correlation that does not exist (fewer than 3 windows, a constant series) is null."""
    return None if value is None or not np.isfinite(value) else float(value)


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _choose_slices(area: np.ndarray, n: int) -> List[int]:
    """Slices for overlays: the one of largest foreground area and others spread over the foreground's extent (the
    whole case when nothing is segmented)."""
    nonzero = np.flatnonzero(area > 0)
    pool = nonzero if len(nonzero) else np.arange(len(area))
    picks = [int(pool[np.argmax(area[pool])])] if len(nonzero) else []
    for q in np.linspace(0, len(pool) - 1, n + 2)[1:-1]:
        picks.append(int(pool[int(round(q))]))
    out: List[int] = []
    for p in picks:
        if p not in out:
            out.append(p)
    return sorted(out[:n])


def run_explain(args: argparse.Namespace) -> int:
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from nnunet_msa.analysis.adaptation_trace import area_per_window, rank_correlation, trace_adaptation
    from nnunet_msa.analysis.explain_plots import plot_masag_overlays, plot_receptive_fields

    model = os.path.abspath(args.model)
    fold = args.fold if args.fold == "all" else int(args.fold)
    if not os.path.isfile(os.path.join(model, "plans.json")):
        raise SystemExit(f"{model} is not a trained nnU-Net model folder (no plans.json). Give "
                         f"nnUNet_results/DatasetX/TRAINER__PLANS__CONFIGURATION with -m.")
    for f in args.input + ([args.label] if args.label else []):
        if not os.path.isfile(f):
            raise SystemExit(f"no such file: {f}")
    device = torch.device(args.device)
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                perform_everything_on_device=device.type == "cuda", device=device, verbose=False,
                                verbose_preprocessing=False, allow_tqdm=not args.no_progress)
    predictor.initialize_from_trained_model_folder(model, use_folds=(fold,), checkpoint_name=args.checkpoint)
    channels = len(predictor.dataset_json["channel_names"])
    if len(args.input) != channels:
        raise SystemExit(f"the model takes {channels} channel(s) ({predictor.dataset_json['channel_names']}), "
                         f"{len(args.input)} file(s) given with -i: give one file per channel, in channel order")
    network = predictor.network
    network.load_state_dict(predictor.list_of_parameters[0])
    network.to(device)
    cm, pm, lm = predictor.configuration_manager, predictor.plans_manager, predictor.label_manager
    preprocessor = cm.preprocessor_class(verbose=False)
    data, ref, props = preprocessor.run_case(args.input, args.label, pm, cm, predictor.dataset_json)
    data_t = torch.from_numpy(np.ascontiguousarray(data)).float()

    print(f"explain: {os.path.basename(model)} fold {fold}, case {os.path.basename(args.input[0])}, preprocessed "
          f"shape {tuple(data.shape[1:])}, patch {list(cm.patch_size)}")
    logits = predictor.predict_sliding_window_return_logits(data_t).float().cpu()
    seg_pre = np.asarray(lm.convert_logits_to_segmentation(logits))
    trace = trace_adaptation(network, data_t, cm.patch_size, 0.5, progress=not args.no_progress)

    spacing = list(cm.spacing)
    pixel_area = float(spacing[-1] * spacing[-2])
    labels = [int(v) for v in lm.foreground_labels]
    pred_area = area_per_window(seg_pre, trace.windows, labels, pixel_area)
    ref_area = area_per_window(np.asarray(ref)[0], trace.windows, labels, pixel_area) if ref is not None else None
    total_pred = np.sum([pred_area[l] for l in labels], axis=0)
    total_ref = np.sum([ref_area[l] for l in labels], axis=0) if ref_area is not None else None

    layers: Dict[str, dict] = {}
    for name in trace.pi:
        erf = trace.expected_receptive_field(name)
        layers[name] = {
            "receptive_fields": trace.receptive_fields[name],
            "pi": trace.pi[name].round(6).tolist(),
            "expected_receptive_field": erf.round(6).tolist(),
            "expected_receptive_field_sd": float(erf.std()),
            "spearman_vs_predicted_area": _finite_or_none(rank_correlation(erf, total_pred)),
            "spearman_vs_reference_area": (_finite_or_none(rank_correlation(erf, total_ref))
                                           if total_ref is not None else None),
        }
    os.makedirs(args.output, exist_ok=True)
    plot_receptive_fields(os.path.join(args.output, "receptive_field.png"), trace, pred_area, ref_area,
                          "slice" if len(cm.patch_size) == 2 else "patch centre (slice)")

    # MASAG overlays in the image's own voxel grid
    image = np.asarray(pm.image_reader_writer_class().read_images([args.input[0]])[0])[0]
    seg_orig = _to_original_space(seg_pre.astype(np.float32), predictor, props)
    seg_orig = np.rint(seg_orig).astype(np.int16)
    label_orig = (np.asarray(pm.image_reader_writer_class().read_seg(args.label)[0])[0] if args.label else None)
    maps_orig = {n: _to_original_space(a, predictor, props) for n, a in trace.attention.items()}
    axis = int(pm.transpose_forward[0])  # nnU-Net's slicing axis in the raw array
    area_orig = (label_orig if label_orig is not None else seg_orig)
    per_slice = (np.moveaxis(area_orig, axis, 0) > 0).reshape(area_orig.shape[axis], -1).sum(1)
    chosen = _choose_slices(per_slice, args.slices)
    overlays = plot_masag_overlays(args.output, image, seg_orig, label_orig, maps_orig, axis, chosen)
    np.savez_compressed(os.path.join(args.output, "masag_maps.npz"), **{n.replace(".", "_"): m.astype(np.float16)
                                                                        for n, m in maps_orig.items()})

    result = {
        "model": model, "fold": fold, "checkpoint": args.checkpoint, "case": args.input,
        "configuration_patch_size": list(cm.patch_size), "spacing": spacing,
        "preprocessed_shape": list(data.shape[1:]),
        "window_kind": "slice" if len(cm.patch_size) == 2 else "patch",
        "windows": [list(map(int, w)) for w in trace.windows],
        "labels": labels, "predicted_area_mm2": {str(k): v.round(4).tolist() for k, v in pred_area.items()},
        "reference_area_mm2": ({str(k): v.round(4).tolist() for k, v in ref_area.items()}
                               if ref_area is not None else None),
        "sacm_layers": layers,
        "masag_gates": list(trace.attention),
        "overlays": {"slicing_axis": axis, "slices": chosen, "files": overlays, "image_shape": list(image.shape),
                     "maps": "masag_maps.npz (each gate's map in the image's voxel grid, name with '_' for '.')"},
    }
    with open(os.path.join(args.output, "explain.json"), "w") as f:
        json.dump(result, f, indent=1)
    kind = "slices" if len(cm.patch_size) == 2 else "patches"
    print(f"Spearman's rho of E[rf] and foreground area over {len(trace.windows)} {kind}:")
    print(f"{'SACM layer':<48} {'rf':>10} {'mean E[rf]':>10} {'sd E[rf]':>9} {'rho(pred)':>10} {'rho(ref)':>10}")
    for name, v in layers.items():
        erf = np.asarray(v["expected_receptive_field"])
        print(f"{name:<48} {str(v['receptive_fields']):>10} {erf.mean():>10.3f} {erf.std():>9.4f} "
              f"{_fmt(v['spearman_vs_predicted_area']):>10} {_fmt(v['spearman_vs_reference_area']):>10}")
    print(f"wrote {args.output}: receptive_field.png, {len(overlays)} overlay(s), masag_maps.npz, explain.json")
    return 0
