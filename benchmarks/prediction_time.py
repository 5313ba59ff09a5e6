"""Sliding-window prediction time of one whole case with nnU-Net's ``nnUNetPredictor``.

The case is the one of median size (voxels after cropping, from the dataset fingerprint), preprocessed by the
plan's own preprocessor (``DefaultPreprocessor.run_case``, what ``nnUNetv2_predict`` runs before prediction). Each
network is built by its trainer class with deep supervision off (as the predictor builds it), freshly initialized,
and handed to ``predictor.manual_initialization``. Timed: ``predict_sliding_window_return_logits`` (tile step 0.5,
Gaussian weighting, test-time mirroring on the trainer's axes, ``perform_everything_on_device=False``), after an
untimed warm-up forward pass of one patch per network; repeats interleaved A, B, A, B, ...
"""
from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import time
from typing import Dict, List, Tuple, Type

import numpy as np
import torch

from benchmarks.networks import build_network, mirror_axes
from benchmarks.workspace import PlanContext


def _raw_cases(ctx: PlanContext) -> Dict[str, dict]:
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    return get_filenames_of_train_images_and_targets(ctx.raw_dir, ctx.dataset_json)


def select_case(ctx: PlanContext) -> str:
    """The case of median voxel count after cropping (fingerprint order = nnU-Net's case order)."""
    cases = list(_raw_cases(ctx))
    try:
        with open(os.path.join(ctx.preprocessed_dir, "dataset_fingerprint.json")) as f:
            shapes = json.load(f)["shapes_after_crop"]
    except (OSError, KeyError):
        return cases[0]
    if len(shapes) != len(cases):
        return cases[0]
    order = np.argsort([float(np.prod(s)) for s in shapes], kind="stable")
    return cases[int(order[len(order) // 2])]


def preprocess_case(ctx: PlanContext, case_id: str) -> Tuple[np.ndarray, dict]:
    """The case preprocessed for this configuration: (data (C, *shape), properties)."""
    images = _raw_cases(ctx)[case_id]["images"]
    preprocessor = ctx.configuration_manager.preprocessor_class(verbose=False)
    with contextlib.redirect_stdout(io.StringIO()):
        data, _, props = preprocessor.run_case(images, None, ctx.plans_manager, ctx.configuration_manager,
                                               ctx.dataset_json)
    return data.astype(np.float32, copy=False), props


def quick_crop(data: np.ndarray, patch_size: List[int]) -> np.ndarray:
    """For ``--quick`` smoke runs: the first slice (2d configurations) or the first patch depth (3d) of the case."""
    depth = 1 if len(patch_size) == 2 else int(patch_size[0])
    return np.ascontiguousarray(data[:, :depth])


def make_predictor(trainer_cls: Type, ctx: PlanContext, device: str = "cpu"):
    """An ``nnUNetPredictor`` holding the trainer's planned network (deep supervision off, fresh weights)."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    network = build_network(trainer_cls, ctx, deep_supervision=False)
    with contextlib.redirect_stdout(io.StringIO()):
        predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True,
                                    perform_everything_on_device=False, device=torch.device(device),
                                    verbose=False, allow_tqdm=False)
    predictor.manual_initialization(network, ctx.plans_manager, ctx.configuration_manager, None, ctx.dataset_json,
                                    trainer_cls.__name__, mirror_axes(trainer_cls, ctx))
    return predictor


def sliding_window_work(predictor, data: torch.Tensor) -> Dict[str, int]:
    """Tiles of the sliding window and network evaluations (tiles × mirror combinations)."""
    from acvl_utils.cropping_and_padding.padding import pad_nd_image

    padded, _ = pad_nd_image(data, predictor.configuration_manager.patch_size, "constant", {"value": 0}, True, None)
    tiles = len(predictor._internal_get_sliding_window_slicers(padded.shape[1:]))
    axes = predictor.allowed_mirroring_axes or ()
    combos = sum(1 for i in range(len(axes)) for _ in itertools.combinations(axes, i + 1)) + 1
    return {"tiles": tiles, "mirror_evaluations_per_tile": combos, "network_evaluations": tiles * combos}


def _warm_up(predictor, data: torch.Tensor) -> None:
    patch = list(predictor.configuration_manager.patch_size)
    x = torch.zeros((1, data.shape[0], *patch), device=predictor.device)
    predictor.network.to(predictor.device).eval()
    with torch.inference_mode():
        predictor.network(x)


def time_prediction_interleaved(predictors: Dict[str, object], data: torch.Tensor, repeats: int,
                                log=print) -> Dict[str, List[float]]:
    """Whole-case sliding-window prediction time per network (seconds), repeats interleaved."""
    for p in predictors.values():
        _warm_up(p, data)
    times: Dict[str, List[float]] = {k: [] for k in predictors}
    for r in range(repeats):
        for key, p in predictors.items():
            t0 = time.perf_counter()
            logits = p.predict_sliding_window_return_logits(data)
            times[key].append(time.perf_counter() - t0)
            if not torch.isfinite(logits).all():
                raise RuntimeError(f"{key}: prediction produced non-finite logits")
        log("    prediction %d/%d: %s" % (r + 1, repeats, ", ".join(f"{k} {times[k][-1]:.2f} s" for k in times)))
    return times
