"""Compare any list of trainers on one dataset and budget: ``benchmarks.ablation`` with the other papers'
architectures as the default list (nnU-Net, MSA2, FIAS, QTSeg, Attention U-Net gate, CBAM, SE, selective kernel).

    python -m benchmarks.compare                                     # hippocampus 2d, the architectures preset
    python -m benchmarks.compare --plan acdc_2d --trainers nnUNetTrainer,nnUNetTrainerQTSeg --epochs 4
    python -m benchmarks.compare --trainers architectures,ablations --epochs 12 --iterations 25 --batch-size 16

Every trainer runs through the real ``nnUNetv2_train`` as its ``*_budget`` variant on the same split, inherited
smaller-batch configuration and budget; the table (``ablation.md`` in ``--out``) has Dice per class, parameters,
forward FLOPs per patch and the training times, ``comparison.png`` Dice against training time.
"""
from __future__ import annotations

import sys
from typing import List, Optional

from benchmarks.ablation import build_parser, main as run_comparison


def main(argv: Optional[List[str]] = None) -> int:
    return run_comparison(argv, build_parser("architectures", "compare"), module="benchmarks.compare")


if __name__ == "__main__":
    sys.exit(main())
