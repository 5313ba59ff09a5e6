"""The non-finite guard under DDP: a non-finite loss on one rank stops every rank at the same step (the decision is
one all-reduce of a flag), two gloo processes on CPU."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nnunet_msa.training.nonfinite_guard import all_ranks_finite


def _rank(rank: int, world: int, init_file: str, results) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        decisions = [all_ranks_finite(True, torch.device("cpu")),             # finite everywhere
                     all_ranks_finite(rank != 1, torch.device("cpu")),        # rank 1's loss is NaN
                     all_ranks_finite(rank == 1, torch.device("cpu"))]        # only rank 1's is finite
        results[rank] = decisions
    finally:
        dist.destroy_process_group()


def test_every_rank_takes_the_same_decision(tmp_path) -> None:
    world = 2
    results = mp.Manager().dict()
    mp.start_processes(_rank, args=(world, str(tmp_path / "init"), results), nprocs=world, start_method="spawn")
    assert dict(results) == {0: [True, False, False], 1: [True, False, False]}


def test_without_a_process_group_it_is_the_local_value() -> None:
    assert not dist.is_initialized()
    assert all_ranks_finite(True, torch.device("cpu")) and not all_ranks_finite(False, torch.device("cpu"))
