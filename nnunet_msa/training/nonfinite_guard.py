"""Stop a training on the first non-finite loss or gradient, before the weights change, and keep every checkpoint.

nnU-Net itself trains on through NaN: the loss is logged as ``nan``, the SGD step writes NaN into every weight, and
the next periodic save overwrites ``checkpoint_latest.pth`` with a network that predicts nothing. With
``NonFiniteGuardMixin``:

- a pre-hook on the optimizer's ``step`` checks that every gradient is finite (after nnU-Net's clipping, after DDP's
  all-reduce, so every rank stops together); with float16 and a GradScaler (CUDA) the scaler skips the step itself
  on an overflow, so the hook is not reached and the scaler works as in nnU-Net;
- ``train_step`` checks the loss it returns (a NaN loss under a GradScaler: the step was skipped);
- under DDP (``-num_gpus N``) the ranks decide together: a non-finite loss on any rank stops every rank at the same
  step (one all-reduce of a flag per step), so no rank waits forever in the next collective; the gradients are
  already the same on every rank after DDP's all-reduce;
- on either, the weights are still the last finite ones: they are written to ``checkpoint_before_nonfinite.pth``
  beside nnU-Net's checkpoints (by rank 0, as nnU-Net's own saves), ``checkpoint_latest.pth``/``checkpoint_best.pth``
  are left as they were, the data
  loader workers are stopped, and ``NonFiniteLossError`` is raised with what happened and how to go on.
"""
from __future__ import annotations

import math
import os
from typing import Any, Dict, List, Tuple

import torch

#: file name of the weights saved when training stops on a non-finite value
BEFORE_NONFINITE = "checkpoint_before_nonfinite.pth"


class NonFiniteLossError(RuntimeError):
    """Training stopped: a loss or gradient was NaN or infinite. The message says where and what to do."""


class _NonFiniteGradients(RuntimeError):
    """Raised by the optimizer pre-hook inside nnU-Net's ``train_step``; turned into ``NonFiniteLossError``."""


def _grads_are_finite(optimizer: torch.optim.Optimizer) -> bool:
    """True when every gradient the optimizer would apply is finite (one reduction, one host sync)."""
    grads: List[torch.Tensor] = [p.grad for group in optimizer.param_groups for p in group["params"]
                                 if p.grad is not None]
    if not grads:
        return True
    norms = torch._foreach_norm(grads)
    return bool(torch.isfinite(torch.stack([n.float() for n in norms])).all())


def _check_grads_before_step(optimizer: torch.optim.Optimizer, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
    """``Optimizer.register_step_pre_hook`` hook: refuse a step with non-finite gradients."""
    if not _grads_are_finite(optimizer):
        raise _NonFiniteGradients("non-finite gradient")


def all_ranks_finite(finite: bool, device: torch.device) -> bool:
    """True when ``finite`` holds on every rank of the default process group (just ``finite`` without one): one
    all-reduce (MAX) of a flag, so every rank takes the same decision."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return finite
    flag = torch.tensor([0.0 if finite else 1.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return float(flag.item()) == 0.0


def _describe_checkpoint(path: str) -> str:
    """``'<path> (epoch N)'`` of an existing checkpoint, without loading the weights' tensors onto a device."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        return f"{path} (saved at the end of epoch {int(ckpt['current_epoch']) - 1})"
    except Exception as e:  # a checkpoint we cannot read is still the user's file: name it, do not touch it
        return f"{path} (unreadable: {e})"


class NonFiniteGuardMixin:
    """Mixin for an ``nnUNetTrainer``: stop on the first non-finite loss or gradient (module docstring)."""

    def configure_optimizers(self):
        optimizer, lr_scheduler = super().configure_optimizers()
        optimizer.register_step_pre_hook(_check_grads_before_step)
        return optimizer, lr_scheduler

    def train_step(self, batch: dict) -> dict:
        try:
            result = super().train_step(batch)
        except _NonFiniteGradients:
            self._stop_on_nonfinite("gradient")
        loss = float(result["loss"])
        here = math.isfinite(loss)
        if not all_ranks_finite(here, self.device):
            self._stop_on_nonfinite(f"loss ({loss})" if not here else "loss on another rank")
        return result

    def _stop_on_nonfinite(self, what: str) -> None:
        """Save the (still finite) weights, name the kept checkpoints, stop the loaders, raise."""
        folder = self.output_folder
        step = getattr(self, "_msa2_step_in_epoch", None)
        where = f"epoch {self.current_epoch}" + (f", iteration {step}/{self.num_iterations_per_epoch}"
                                                 if step is not None else "")
        lines = [f"Non-finite {what} at {where}: training stopped before the optimizer step, so the weights were "
                 f"not changed by it."]
        params = [p for p in self.network.parameters()]
        if all(bool(torch.isfinite(p).all()) for p in params):
            path = os.path.join(folder, BEFORE_NONFINITE)
            self.save_checkpoint(path)
            lines.append(f"The weights of this moment (all finite) are in {path}.")
        else:
            lines.append("The weights are already non-finite (an earlier step); they were not saved.")
        kept = [os.path.join(folder, n) for n in ("checkpoint_latest.pth", "checkpoint_best.pth")
                if os.path.isfile(os.path.join(folder, n))]
        lines.append("Kept unchanged: " + ("; ".join(_describe_checkpoint(k) for k in kept) if kept
                                          else "no earlier checkpoint exists yet."))
        lines.append("Fix: check the images for NaN/inf (nnUNetv2_plan_and_preprocess --verify_dataset_integrity), "
                     "lower the learning rate (a trainer subclass with a smaller initial_lr), then continue with "
                     "nnUNetv2_train ... --c (it resumes from checkpoint_latest.pth).")
        if any("checkpoint_before_nonfinite" in line for line in lines):
            lines.append(f"To go on from the weights of this moment instead: copy {BEFORE_NONFINITE} over "
                         f"checkpoint_latest.pth in {folder} (keep a copy of the old one), then nnUNetv2_train ... "
                         f"--c (it resumes after epoch {self.current_epoch}).")
        message = "\n".join(lines)
        self.print_to_log_file(message)
        self._finish_dataloaders()
        raise NonFiniteLossError(message)

    def _finish_dataloaders(self) -> None:
        """Stop nnU-Net's background augmentation workers (what ``on_train_end`` does), so the process exits."""
        for name in ("dataloader_train", "dataloader_val"):
            loader = getattr(self, name, None)
            finish = getattr(loader, "_finish", None)
            if callable(finish):
                try:
                    finish()
                except Exception:
                    pass
