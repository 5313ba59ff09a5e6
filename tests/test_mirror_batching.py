"""Test-time mirroring in one batch (``network/mirror_batching.py``): nnU-Net's own predictor, on a real
hippocampus image and the real hippocampus 2d and 3d_fullres plans, gives the same logits with the batching on and
off, evaluates the mirrored copies in batches from the second tile on, never answers a call from outputs computed
with other weights, and stays out of training, autograd, observation and a predictor without mirroring."""
from __future__ import annotations

import contextlib
import io
import json
import os

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunet_msa.blocks.observe import observe_attention
from nnunet_msa.network.msa2_unet import MSA2UNet
from nnunet_msa.training import nnUNetTrainerMSA2

MIRRORS = {"2d": (0, 1), "3d_fullres": (0, 1, 2)}


def _network(folder: str, configuration: str, seed: int = 0):
    pm = PlansManager(os.path.join(folder, "nnUNetPlans.json"))
    with open(os.path.join(folder, "dataset.json")) as f:
        dataset_json = json.load(f)
    cm = pm.get_configuration(configuration)
    torch.manual_seed(seed)
    net = nnUNetTrainerMSA2.build_network_architecture(pm, cm, 1, 3, False)
    return pm, cm, dataset_json, net.eval()


def _image(shared_data, case: str = "hippocampus_001") -> torch.Tensor:
    """A real image in nnU-Net's axis order (SimpleITK's array order), z-scored as nnU-Net normalizes MRI:
    (1, *S) float32."""
    a = sitk.GetArrayFromImage(sitk.ReadImage(str(shared_data / "Task04_Hippocampus" / "imagesTr" /
                                                  f"{case}.nii.gz"))).astype(np.float32)
    return torch.from_numpy((a - a.mean()) / a.std())[None]


def _tile(data: torch.Tensor, z: int, patch) -> torch.Tensor:
    """Slice z of the image zero-padded to one 2d tile: (1, 1, *patch)."""
    sl = data[:, z]
    out = torch.zeros((1, 1, *patch))
    out[0, :, :sl.shape[1], :sl.shape[2]] = sl[:, :patch[0], :patch[1]]
    return out


def _predict(net, pm, cm, dataset_json, data, configuration: str, mirroring: bool = True) -> torch.Tensor:
    with contextlib.redirect_stdout(io.StringIO()):
        p = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=mirroring,
                            perform_everything_on_device=False, device=torch.device("cpu"), verbose=False,
                            allow_tqdm=False)
        p.manual_initialization(net, pm, cm, None, dataset_json, "nnUNetTrainerMSA2", MIRRORS[configuration])
        return p.predict_sliding_window_return_logits(data).float()


def _tiles(pm, cm, dataset_json, net, data) -> int:
    from acvl_utils.cropping_and_padding.padding import pad_nd_image

    with contextlib.redirect_stdout(io.StringIO()):
        p = nnUNetPredictor(tile_step_size=0.5, device=torch.device("cpu"), verbose=False, allow_tqdm=False)
        p.manual_initialization(net, pm, cm, None, dataset_json, "nnUNetTrainerMSA2", (0,))
    padded, _ = pad_nd_image(data, cm.patch_size, "constant", {"value": 0}, True, None)
    return len(p._internal_get_sliding_window_slicers(padded.shape[1:]))


@pytest.mark.parametrize("configuration", ["2d", "3d_fullres"])
def test_predictor_logits_equal_with_and_without_batching(planned, shared_data, configuration):
    pm, cm, dataset_json, net = _network(planned["4"], configuration)
    data = _image(shared_data)
    if configuration == "2d":
        data = data[:, :12]  # 12 slices: 12 × the tiles of one slice
    else:  # a hippocampus crop is smaller than the 3d patch: the image and its mirror side by side, several tiles
        data = torch.cat([data, data.flip(1)], 1)
    batcher = net.mirror_batcher
    batcher.enabled = False
    reference = _predict(net, pm, cm, dataset_json, data, configuration)
    assert batcher.batched_calls == 0
    batcher.enabled = True
    batched = _predict(net, pm, cm, dataset_json, data, configuration)
    tiles = _tiles(pm, cm, dataset_json, net, data)
    combos = 2 ** len(MIRRORS[configuration]) - 1
    assert tiles >= 2
    # the first tile teaches the predictor's combinations; every later tile is one batch of 1 + combos copies
    assert batcher.batched_calls == tiles - 1, (batcher.batched_calls, tiles)
    assert batcher.answered_calls == combos * (tiles - 1)
    # the predictor sums the tiles' logits in float16: differences of its rounding (1e-3 at logits of 1-10)
    torch.testing.assert_close(batched, reference, rtol=5e-3, atol=5e-3)
    assert (batched.argmax(0) == reference.argmax(0)).float().mean() > 0.999


def test_answer_equals_the_single_forward_in_float32(planned, shared_data):
    pm, cm, dataset_json, net = _network(planned["4"], "2d")
    data = _image(shared_data)
    a, b = (_tile(data, z, cm.patch_size) for z in (10, 20))
    combos = [(2,), (3,), (2, 3)]
    with torch.inference_mode():
        net(a), [net(torch.flip(a, c)) for c in combos]
        answers = [net(b)] + [net(torch.flip(b, c)) for c in combos]
        assert net.mirror_batcher.batched_calls == 1 and net.mirror_batcher.answered_calls == 3
        net.mirror_batcher.enabled = False
        singles = [net(b)] + [net(torch.flip(b, c)) for c in combos]
    for got, expected in zip(answers, singles):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_no_batching_without_mirroring_training_or_autograd(planned, shared_data):
    pm, cm, dataset_json, net = _network(planned["4"], "2d")
    data = _image(shared_data)[:, :6]
    _predict(net, pm, cm, dataset_json, data, "2d", mirroring=False)
    assert net.mirror_batcher.batched_calls == 0
    x = _tile(data, 3, cm.patch_size)
    for train, grad in ((True, False), (False, True)):
        net.train(train)
        with torch.set_grad_enabled(grad):
            net(x)
            net(torch.flip(x, (3,)))
            net(x + 1)
    assert net.mirror_batcher.batched_calls == 0


def test_answers_only_for_the_same_weights_and_input(planned, shared_data):
    """A tile batched with fold 0's weights, then fold 1's weights loaded (as the predictor does between folds):
    the mirrored call is computed with fold 1's weights, not answered from fold 0's batch."""
    pm, cm, dataset_json, net = _network(planned["4"], "2d", seed=0)
    other = _network(planned["4"], "2d", seed=1)[3].state_dict()
    data = _image(shared_data)
    a, b = (_tile(data, z, cm.patch_size) for z in (10, 20))
    flip = (3,)
    fold0_net = _network(planned["4"], "2d", seed=0)[3]
    fold0_net.mirror_batcher.enabled = False
    with torch.inference_mode():
        fold0 = fold0_net(torch.flip(b, flip))     # what an answer from fold 0's batch would be
        net(a), net(torch.flip(a, flip))           # learns the combination (3,)
        net(b)                                      # batch [b, flip(b)]
        assert net.mirror_batcher.batched_calls == 1
        net.load_state_dict(other)
        got = net(torch.flip(b, flip))
        assert net.mirror_batcher.answered_calls == 0
        net.mirror_batcher.enabled = False
        expected = net(torch.flip(b, flip))
        # float32 to 1e-4: oneDNN's kernels round differently between CPUs (1.1e-5 on an AMD EPYC), while fold 0's
        # answer would differ from fold 1's by O(1) (the last assertion of this block)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
        assert (got - fold0).abs().max() > 1e-2    # fold 0's answer would have been wrong
        net.mirror_batcher.enabled = True
        net(b)                                      # batch [b, flip(b)] with the new weights
        wrong = torch.flip(b, flip) + 1e-3          # not bitwise the flipped tile: computed, not answered
        before = net.mirror_batcher.answered_calls
        net(wrong)
        assert net.mirror_batcher.answered_calls == before


def test_observation_evaluates_every_call_alone(planned, shared_data):
    pm, cm, dataset_json, net = _network(planned["4"], "2d")
    data = _image(shared_data)[:, :8]
    with observe_attention(net) as modules:
        _predict(net, pm, cm, dataset_json, data, "2d")
        assert all(m.last_pi.shape[0] == 1 for m in modules if hasattr(m, "last_pi") and m.last_pi is not None)
    assert net.mirror_batcher.batched_calls == 0 and net.mirror_batcher.enabled
    assert isinstance(net, MSA2UNet)
