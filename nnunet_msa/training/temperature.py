"""SACM temperature annealing (``docs/design.md``, "Temperature"): linear from τ0 to 1 over the first
max(1, ceil(fraction · epochs · iterations)) iterations, then 1. A function of the global iteration, so a resumed
run (``--c``) continues on the same curve."""
from __future__ import annotations

import math

from torch import nn

from nnunet_msa.blocks.observe import unwrap
from nnunet_msa.blocks.sacm import SACM


def anneal_iterations(num_epochs: int, iterations_per_epoch: int, fraction: float = 0.1) -> int:
    """Length of the annealing phase in iterations, at least 1."""
    return max(1, math.ceil(fraction * num_epochs * iterations_per_epoch))


def annealed_temperature(iteration: int, num_epochs: int, iterations_per_epoch: int, tau0: float = 30.0,
                         fraction: float = 0.1) -> float:
    """τ at global iteration ``iteration`` (epoch · iterations_per_epoch + step, 0-based)."""
    n = anneal_iterations(num_epochs, iterations_per_epoch, fraction)
    if iteration >= n:
        return 1.0
    return float(tau0 + (1.0 - tau0) * iteration / n)


def set_sacm_temperature(network: nn.Module, tau: float) -> int:
    """Set τ of every SACM in place (``fill_``) through DDP/compile wrappers; returns how many were set."""
    n = 0
    for m in unwrap(network).modules():
        if isinstance(m, SACM):
            m.temperature.fill_(tau)
            n += 1
    return n


def get_sacm_temperatures(network: nn.Module) -> list:
    """τ of every SACM, in network order."""
    return [float(m.temperature) for m in unwrap(network).modules() if isinstance(m, SACM)]
