"""SACM temperature annealing: the schedule of the spec, set in place through torch.compile's wrapper."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from nnunet_msa.network.msa2_unet import MSA2UNet
from nnunet_msa.training.temperature import (anneal_iterations, annealed_temperature, get_sacm_temperatures,
                                             set_sacm_temperature)


def test_linear_from_tau0_to_one_over_ten_percent_then_one():
    epochs, iters = 10, 25  # 250 iterations, annealing over ceil(0.1 * 250) = 25
    assert anneal_iterations(epochs, iters) == 25
    assert annealed_temperature(0, epochs, iters, tau0=30) == pytest.approx(30)
    assert annealed_temperature(12, epochs, iters, tau0=30) == pytest.approx(30 - 29 * 12 / 25)
    assert annealed_temperature(25, epochs, iters, tau0=30) == 1.0
    assert annealed_temperature(10_000, epochs, iters, tau0=30) == 1.0
    values = [annealed_temperature(i, epochs, iters) for i in range(30)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert anneal_iterations(1, 1) == 1 and annealed_temperature(1, 1, 1) == 1.0


def test_a_resumed_run_continues_on_the_same_curve():
    """τ depends on the global iteration only, so epoch 3 step 4 is the same before and after a resume."""
    epochs, iters = 20, 10
    assert annealed_temperature(3 * iters + 4, epochs, iters) == annealed_temperature(34, epochs, iters)


def _tiny_net() -> MSA2UNet:
    return MSA2UNet(1, 3, [8, 16, 32], nn.Conv2d, 3, [1, 2, 2], 2, 1, n_conv_per_stage=1,
                    norm_op=nn.InstanceNorm2d, nonlin=nn.LeakyReLU, deep_supervision=True)


def test_set_through_compile_wrapper_in_place_and_saved_in_state_dict():
    net = _tiny_net()
    buffers = [b for n, b in net.named_buffers() if n.endswith("temperature")]
    assert buffers and all(float(b) == 1.0 for b in buffers)  # default τ = 1 for any trainer
    wrapped = torch.compile(net)
    n = set_sacm_temperature(wrapped, 7.5)
    assert n == len(buffers) == len(get_sacm_temperatures(net))
    assert all(float(b) == 7.5 for b in buffers)  # same tensors, updated in place
    state = net.state_dict()
    restored = _tiny_net()
    restored.load_state_dict(state)
    assert get_sacm_temperatures(restored) == [7.5] * n
