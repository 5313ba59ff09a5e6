"""Cost of one nnU-Net training step: wall time (interleaved repeats after warm-up) and FLOPs.

A step is nnU-Net's ``train_step`` on CPU: zero_grad, forward, the trainer's deep-supervision loss, backward,
gradient clipping at 12, SGD step (on CUDA also autocast and GradScaler, as the trainer). Inputs are a synthetic
batch at the planned patch size: normal-distributed images and uniformly random labels, downsampled (nearest) to
every deep-supervision scale as nnU-Net's data loader does; both networks get the same batch.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` during the first warm-up step (untimed):
forward (+ loss) and backward separately. FlopCounterMode counts convolutions and matrix products (2 FLOPs per
multiply-add); element-wise work (norms, activations, softmax, the SACM mixing and MASAG products) is not counted.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Type

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.flop_count import flop_counter
from benchmarks.networks import build_loss, build_network, build_optimizer
from benchmarks.workspace import PlanContext

CPU_VOXELS_PER_STEP = 2 ** 18  # default CPU batch: planned batch capped at this many voxels per step
QUICK_VOXELS_PER_STEP = 2 ** 11  # --quick: batch 1 for every plan


def default_batch_size(ctx: PlanContext, device: str, voxel_budget: int = CPU_VOXELS_PER_STEP) -> int:
    """The planned batch on CUDA; on CPU the planned batch capped at ``voxel_budget`` voxels (at least 1)."""
    if device.startswith("cuda"):
        return ctx.planned_batch_size
    return max(1, min(ctx.planned_batch_size, voxel_budget // math.prod(ctx.patch_size)))


def synthetic_batch(ctx: PlanContext, batch_size: int, scales: Optional[Sequence[Sequence[float]]], seed: int,
                    device: torch.device):
    """(data (B, C, *patch), targets): one target per deep-supervision scale, highest resolution first."""
    g = torch.Generator().manual_seed(seed)
    patch = ctx.patch_size
    data = torch.randn((batch_size, ctx.num_input_channels, *patch), generator=g)
    labels = torch.randint(0, ctx.num_output_channels, (batch_size, 1, *patch), generator=g).float()
    if scales is None:
        return data.to(device), labels.to(device)
    targets = []
    for s in scales:
        size = [int(round(p * f)) for p, f in zip(patch, s)]
        targets.append((labels if size == list(patch) else F.interpolate(labels, size=size, mode="nearest"))
                       .to(device))
    return data.to(device), targets


@dataclass
class StepSetup:
    """Everything one network needs for training steps."""

    network: nn.Module
    loss: nn.Module
    optimizer: torch.optim.Optimizer
    data: torch.Tensor
    target: list
    device: torch.device
    grad_scaler: Optional[object] = None
    flops: Dict[str, float] = field(default_factory=dict)


def make_step_setup(trainer_cls: Type, ctx: PlanContext, batch_size: int, device: str = "cpu",
                    seed: int = 0) -> StepSetup:
    """The trainer's network (deep supervision on), loss and optimizer, and a synthetic batch."""
    dev = torch.device(device)
    network = build_network(trainer_cls, ctx, deep_supervision=True, seed=seed).to(dev)
    network.train()
    loss, scales = build_loss(trainer_cls, ctx)
    data, target = synthetic_batch(ctx, batch_size, scales, seed, dev)
    scaler = torch.amp.GradScaler("cuda") if dev.type == "cuda" else None
    return StepSetup(network, loss, build_optimizer(trainer_cls, network), data, target, dev, scaler)


def _forward_loss(s: StepSetup) -> torch.Tensor:
    s.optimizer.zero_grad(set_to_none=True)
    if s.device.type == "cuda":
        with torch.autocast("cuda", enabled=True):
            return s.loss(s.network(s.data), s.target)
    return s.loss(s.network(s.data), s.target)


def _backward_update(s: StepSetup, loss: torch.Tensor) -> None:
    if s.grad_scaler is not None:
        s.grad_scaler.scale(loss).backward()
        s.grad_scaler.unscale_(s.optimizer)
        torch.nn.utils.clip_grad_norm_(s.network.parameters(), 12)
        s.grad_scaler.step(s.optimizer)
        s.grad_scaler.update()
    else:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(s.network.parameters(), 12)
        s.optimizer.step()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_step(s: StepSetup) -> float:
    """One training step as nnU-Net's ``train_step``; returns the loss."""
    loss = _forward_loss(s)
    _backward_update(s, loss)
    _sync(s.device)
    return float(loss.detach())


def counted_training_step(s: StepSetup) -> Dict[str, float]:
    """One training step under FlopCounterMode (groups-corrected conv backward, see flop_count.py); stores and returns forward/backward/total FLOPs."""
    with flop_counter() as fwd:
        loss = _forward_loss(s)
    with flop_counter() as bwd:
        _backward_update(s, loss)
    _sync(s.device)
    s.flops = {"forward": float(fwd.get_total_flops()), "backward": float(bwd.get_total_flops())}
    s.flops["total"] = s.flops["forward"] + s.flops["backward"]
    return s.flops


def time_steps_interleaved(setups: Dict[str, StepSetup], warmup: int, repeats: int,
                           log=print) -> Dict[str, List[float]]:
    """Warm-up (the first warm-up step of each network counts FLOPs), then ``repeats`` rounds A, B, A, B, ...;
    returns the step times in seconds per network."""
    names = list(setups)
    for i in range(max(1, warmup)):
        for name in names:
            t0 = time.perf_counter()
            if i == 0:
                counted_training_step(setups[name])
            else:
                training_step(setups[name])
            log(f"    warm-up {name} {i + 1}/{max(1, warmup)}: {time.perf_counter() - t0:.2f} s")
    times: Dict[str, List[float]] = {n: [] for n in names}
    for r in range(repeats):
        for name in names:
            t0 = time.perf_counter()
            training_step(setups[name])
            times[name].append(time.perf_counter() - t0)
        log("    repeat %d/%d: %s" % (r + 1, repeats, ", ".join(f"{n} {times[n][-1]:.2f} s" for n in names)))
    return times
