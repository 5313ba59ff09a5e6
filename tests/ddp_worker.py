"""Training steps of the MSA2 network the way nnU-Net's trainer runs them, with and without DDP (helpers of
``test_ddp.py``; not a test module).

As a script it is one DDP rank (gloo, CPU):

    python ddp_worker.py RANK WORLD_SIZE INIT_FILE PLANS_FOLDER OUT_FILE

It joins the process group through ``INIT_FILE`` (``file://`` rendezvous), and for every entry of ``CASES`` builds
``nnUNetTrainerMSA2``'s network from the real plans, wraps it like ``nnUNetTrainer.initialize`` (``DDP(network)``,
``find_unused_parameters=False``), builds the loss with ``nnUNetTrainer._build_loss`` (``ddp`` dice, deep-supervision
weights[-1] = 1e-6), and runs ``ITERATIONS`` training steps on its share of a fixed global batch with the trainer's
SACM temperature schedule. What it saw is written to ``OUT_FILE`` (``torch.save``) for the test to check.
"""
from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn

#: configuration -> (global batch size, patch size or None for the planned one). 3d_fullres runs on a fifth of its
#: planned 40x56x40 patch (still divisible by the strides, 8 per axis) to keep the test at seconds on 2 CPU cores.
CASES: Dict[str, Tuple[int, Optional[Tuple[int, ...]]]] = {"2d": (4, None), "3d_fullres": (2, (24, 32, 24))}
PLANS = "nnUNetPlans"
ITERATIONS = 2
#: schedule length of the temperature annealing: with 1 epoch of 20 iterations and fraction 0.1 it lasts 2 iterations,
#: so the two steps run at τ = 30 and τ = 15.5
NUM_EPOCHS, ITERATIONS_PER_EPOCH = 1, 20
#: τ that rank 1 puts into its buffers before DDP wraps the network / before the second forward, to be overruled
STRAY_TEMPERATURE = 7.0


class LossHost:
    """Just enough of an ``nnUNetTrainer`` for its own ``_build_loss`` (and ``_get_deep_supervision_scales``) to
    build the loss it would build, with or without DDP, without constructing a trainer (which would move to CUDA
    under DDP)."""

    def __init__(self, plans_manager, configuration_manager, dataset_json: dict, is_ddp: bool):
        from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

        self.plans_manager = plans_manager
        self.configuration_manager = configuration_manager
        self.label_manager = plans_manager.get_label_manager(dataset_json)
        self.is_ddp = is_ddp
        self.enable_deep_supervision = True
        self._build = nnUNetTrainer._build_loss
        self._scales = nnUNetTrainer._get_deep_supervision_scales

    def _do_i_compile(self) -> bool:  # nnU-Net compiles on CUDA only
        return False

    def _get_deep_supervision_scales(self):
        return self._scales(self)

    def build_loss(self) -> nn.Module:
        return self._build(self)


def load_plans(folder: str):
    """(PlansManager, dataset.json) of a preprocessed dataset folder."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    with open(os.path.join(folder, "dataset.json")) as f:
        dataset_json = json.load(f)
    return PlansManager(os.path.join(folder, f"{PLANS}.json")), dataset_json


def build_case(folder: str, configuration: str, is_ddp: bool):
    """(network, loss, patch size, configuration manager, loss host) for a configuration:
    ``nnUNetTrainerMSA2.build_network_architecture`` with its default options (seeded, so every process builds the
    same weights) and nnU-Net's loss."""
    from nnunet_msa.training.nnunet_trainer_msa2 import nnUNetTrainerMSA2

    pm, dataset_json = load_plans(folder)
    cm = pm.get_configuration(configuration)
    host = LossHost(pm, cm, dataset_json, is_ddp)
    torch.manual_seed(0)
    network = nnUNetTrainerMSA2.build_network_architecture(
        pm, cm, len(dataset_json["channel_names"]), host.label_manager.num_segmentation_heads, True)
    patch = CASES[configuration][1] or tuple(cm.patch_size)
    return network, host.build_loss(), patch, cm, host


def global_batch(configuration: str, iteration: int, patch: Sequence[int], num_classes: int,
                 strides: Sequence[Sequence[int]]) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """The fixed global batch of an iteration: standard-normal images and random labels, with the label downsampled
    (nearest, by striding) to every deep-supervision resolution as nnU-Net's ``DownsampleSegForDSTransform`` does."""
    g = torch.Generator().manual_seed(1000 * (1 + list(CASES).index(configuration)) + iteration)
    b = CASES[configuration][0]
    x = torch.randn(b, 1, *patch, generator=g)
    seg = torch.randint(0, num_classes, (b, 1, *patch), generator=g).float()
    targets, factor = [], [1] * len(patch)
    for s in strides[:-1]:
        factor = [f * int(si) for f, si in zip(factor, s)]
        targets.append(seg[(slice(None), slice(None), *(slice(None, None, f) for f in factor))])
    return x, targets


def rank_slice(global_batch_size: int, world_size: int, rank: int) -> slice:
    """The samples of a rank, as ``nnUNetTrainer._set_batch_size_and_oversample`` splits the global batch."""
    sizes = [global_batch_size // world_size] * world_size
    sizes = [s + 1 if s * world_size + i < global_batch_size else s for i, s in enumerate(sizes)]
    low = sum(sizes[:rank])
    return slice(low, low + sizes[rank])


def make_optimizer(network: nn.Module) -> torch.optim.Optimizer:
    """``nnUNetTrainer.configure_optimizers``' SGD (its defaults: lr 1e-2, weight decay 3e-5)."""
    return torch.optim.SGD(network.parameters(), 1e-2, weight_decay=3e-5, momentum=0.99, nesterov=True)


def temperature(iteration: int) -> float:
    """τ of ``nnUNetTrainerMSA2.train_step`` at a global iteration."""
    from nnunet_msa.training.nnunet_trainer_msa2 import nnUNetTrainerMSA2
    from nnunet_msa.training.temperature import annealed_temperature

    return annealed_temperature(iteration, NUM_EPOCHS, ITERATIONS_PER_EPOCH, nnUNetTrainerMSA2.tau0,
                                nnUNetTrainerMSA2.anneal_fraction)


@contextmanager
def counting_checkpoints() -> Iterator[List[int]]:
    """Within the block, ``nnunet_msa.blocks.recompute`` calls ``torch.utils.checkpoint`` through a counter
    (``[calls]``)."""
    from nnunet_msa.blocks import recompute

    original, calls = recompute.checkpoint, [0]

    def counting(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    recompute.checkpoint = counting
    try:
        yield calls
    finally:
        recompute.checkpoint = original


def train(network: nn.Module, loss: nn.Module, configuration: str, patch: Sequence[int], strides, num_classes: int,
          samples: slice, before_forward=None) -> Dict[str, Any]:
    """``ITERATIONS`` steps of ``nnUNetTrainerMSA2.train_step`` (τ, zero_grad, forward, loss, backward, clip to 12,
    SGD) on ``samples`` of each global batch. ``network`` may be DDP-wrapped; ``before_forward(iteration)`` runs
    right before each forward. Returns the losses, the gradients of the first step (before clipping), the names of
    parameters without a gradient per step, the SACM temperatures after each forward, how many blocks ran through
    ``torch.utils.checkpoint`` (recomputation), the initial and final weights."""
    from nnunet_msa.blocks.observe import unwrap
    from nnunet_msa.training.temperature import get_sacm_temperatures, set_sacm_temperature

    plain = unwrap(network)
    dtype = next(plain.parameters()).dtype
    optimizer = make_optimizer(network)
    record: Dict[str, Any] = {"losses": [], "no_grad": [], "temperatures": [], "taus": [],
                              "initial": {n: p.detach().clone() for n, p in plain.named_parameters()}}
    with counting_checkpoints() as checkpoints:
        for it in range(ITERATIONS):
            x, targets = global_batch(configuration, it, patch, num_classes, strides)
            tau = temperature(it)
            record["taus"].append(tau)
            set_sacm_temperature(network, tau)
            if before_forward is not None:
                before_forward(it)
            optimizer.zero_grad(set_to_none=True)
            output = network(x[samples].to(dtype))
            record["temperatures"].append(get_sacm_temperatures(network))
            value = loss(output, [t[samples] for t in targets])
            value.backward()
            record["losses"].append(float(value.detach()))
            record["no_grad"].append([n for n, p in plain.named_parameters() if p.requires_grad and p.grad is None])
            if it == 0:
                record["grads"] = {n: p.grad.detach().clone() for n, p in plain.named_parameters()
                                   if p.grad is not None}
            torch.nn.utils.clip_grad_norm_(network.parameters(), 12)
            optimizer.step()
    record["checkpoints"] = checkpoints[0]
    record["weights"] = {n: p.detach().clone() for n, p in plain.named_parameters()}
    return record


def reference(folder: str, configuration: str) -> Dict[str, Any]:
    """One process, no DDP, the whole global batch, in float64 (the same initial weights, cast) so that the reference
    carries no float32 rounding of its own: nnU-Net's non-DDP loss (batch dice over the local, here global, batch)
    with the deep-supervision weights of the DDP loss (weights[-1] = 1e-6 instead of 0): the same objective."""
    network, loss, patch, cm, host = build_case(folder, configuration, is_ddp=False)
    host.is_ddp = True
    loss.weight_factors = host.build_loss().weight_factors  # only built, never called: needs no process group
    b = CASES[configuration][0]
    return train(network.double(), loss, configuration, patch, cm.pool_op_kernel_sizes, network.num_classes,
                 slice(0, b))


def run_rank(rank: int, world_size: int, init_file: str, folder: str) -> Dict[str, Any]:
    """Every case on this rank under DDP; rank 1 starts from a stray SACM temperature and strays again before the
    second forward (DDP's buffer broadcast from rank 0 must overrule both)."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from nnunet_msa.training.temperature import get_sacm_temperatures, set_sacm_temperature

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    results: Dict[str, Any] = {}
    try:
        for configuration, (b, _) in CASES.items():
            network, loss, patch, cm, _ = build_case(folder, configuration, is_ddp=True)
            if rank == 1:
                set_sacm_temperature(network, STRAY_TEMPERATURE)
            before_wrap = get_sacm_temperatures(network)
            network = DDP(network)  # nnUNetTrainer.initialize: DDP(network, device_ids=[local_rank]) on CUDA
            after_wrap = get_sacm_temperatures(network)

            def stray(it: int) -> None:
                if rank == 1 and it == 1:
                    set_sacm_temperature(network, STRAY_TEMPERATURE)

            record = train(network, loss, configuration, patch, cm.pool_op_kernel_sizes, network.module.num_classes,
                           rank_slice(b, world_size, rank), before_forward=stray)
            record["temperatures_before_wrap"] = before_wrap
            record["temperatures_after_wrap"] = after_wrap
            record["weight_factors"] = list(loss.weight_factors)
            results[configuration] = record
            dist.barrier()
    finally:
        dist.destroy_process_group()
    return results


if __name__ == "__main__":
    torch.set_num_threads(1)  # two ranks on two cores
    rank_arg, world_arg, init_arg, folder_arg, out_arg = sys.argv[1:6]
    torch.save(run_rank(int(rank_arg), int(world_arg), init_arg, folder_arg), out_arg)
