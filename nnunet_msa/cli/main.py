"""The ``nnunet-msa`` command: ``trainers-path``, ``doctor``, ``demo``."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnunet-msa", description="MSA2-Net modules for nnU-Net v2.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("trainers-path", help="print the folder for nnUNet_extTrainer "
                                         "(export nnUNet_extTrainer=$(nnunet-msa trainers-path))")
    sub.add_parser("doctor", help="check that nnU-Net finds the trainers and its folders are set; say what to fix")
    from nnunet_msa.cli.demo import add_demo_arguments
    add_demo_arguments(sub.add_parser("demo", help="synthetic (or --msd) dataset -> plan -> train nnUNetTrainer "
                                                   "and nnUNetTrainerMSA2 on one budget -> predict -> Dice table"))
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "trainers-path":
        from nnunet_msa.cli.trainers_path import trainers_path
        print(trainers_path())
        return 0
    if args.command == "doctor":
        from nnunet_msa.cli.doctor import run_doctor
        return run_doctor()
    if args.command == "demo":
        from nnunet_msa.cli.demo import run_demo
        return run_demo(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
