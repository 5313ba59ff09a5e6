"""Switch on observation of SACM attention (π) and MASAG attention maps for analysis; off by default so that
training pays nothing."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, List

from torch import nn

from nnunet_msa.blocks.masag import MASAG
from nnunet_msa.blocks.sacm import SACM


def unwrap(network: nn.Module) -> nn.Module:
    """The plain module behind DDP (``.module``) and torch.compile (``._orig_mod``) wrappers."""
    while True:
        if hasattr(network, "_orig_mod"):
            network = network._orig_mod
        elif isinstance(network, nn.parallel.DistributedDataParallel) or type(network).__name__ in (
                "DistributedDataParallel", "DataParallel"):
            network = network.module
        else:
            return network


@contextmanager
def observe_attention(network: nn.Module) -> Iterator[List[nn.Module]]:
    """Within the block every SACM keeps its last π (``last_pi``, (B, K)) and every MASAG its last recalibration map
    (``last_attention``, (B, 1, *S)), both detached. Yields the observed modules in network order."""
    modules = [m for m in unwrap(network).modules() if isinstance(m, (SACM, MASAG))]
    # one forward pass per call while observing: no mirrored copies batched with it (network/mirror_batching.py)
    batchers = [m.mirror_batcher for m in unwrap(network).modules() if hasattr(m, "mirror_batcher")]
    was_enabled = [b.enabled for b in batchers]
    for m in modules:
        m.observe = True
    for b in batchers:
        b.enabled = False
    try:
        yield modules
    finally:
        for m in modules:
            m.observe = False
        for b, e in zip(batchers, was_enabled):
            b.enabled = e
