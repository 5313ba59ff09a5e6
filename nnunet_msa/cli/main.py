"""The ``nnunet-msa`` command: ``trainers-path``, ``trainers``, ``doctor``, ``demo``, ``plan``, ``explain``,
``record-network``, ``compare``."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnunet-msa", description="MSA2-Net modules for nnU-Net v2.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("trainers-path", help="print the folder for nnUNet_extTrainer "
                                         "(export nnUNet_extTrainer=$(nnunet-msa trainers-path))")
    from nnunet_msa.cli.trainers import add_trainers_arguments
    add_trainers_arguments(sub.add_parser("trainers", help="list the trainers nnU-Net finds there: what each is, "
                                                           "its preset and cost; the experiments marked"))
    from nnunet_msa.cli.doctor import add_doctor_arguments
    add_doctor_arguments(sub.add_parser("doctor", help="check that nnU-Net finds the trainer, its folders are set "
                                                       "and (-d/-c) the network builds from the plans; say what "
                                                       "to fix"))
    from nnunet_msa.cli.demo import add_demo_arguments
    add_demo_arguments(sub.add_parser("demo", help="synthetic (or --msd) dataset -> plan -> train nnUNetTrainer "
                                                   "and nnUNetTrainerMSA2 on one budget -> predict -> Dice table"))
    from nnunet_msa.cli.plan import add_plan_arguments
    add_plan_arguments(sub.add_parser("plan", help="nnUNetv2_plan_and_preprocess with an MSA2 planner: plans "
                                                   "nnUNetMSA2Plans (or nnUNetMSA2ResEncPlans) sized by the MSA2 "
                                                   "network's memory estimate"))
    from nnunet_msa.cli.explain import add_explain_arguments
    add_explain_arguments(sub.add_parser("explain", help="where SACM widens/narrows its receptive field along z and "
                                                         "where MASAG looks, for one case and a trained model"))
    from nnunet_msa.cli.compare import add_compare_arguments
    add_compare_arguments(sub.add_parser("compare", help="does trainer B help on my data? paired Dice differences "
                                                         "per case from nnU-Net's cross-validation (or test "
                                                         "predictions), with a bootstrap interval, cost and verdict",
                                         description=__import__("nnunet_msa.cli.compare", fromlist=["x"]).__doc__,
                                         formatter_class=argparse.RawDescriptionHelpFormatter))
    from nnunet_msa.cli.record_network import add_record_network_arguments
    add_record_network_arguments(sub.add_parser("record-network", help="record in a model folder trained before "
                                                                       "0.2.0 which network its weights belong to "
                                                                       "(found from the weights, or --preset)"))
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "trainers-path":
        from nnunet_msa.pipeline.trainers_path import trainers_path
        print(trainers_path())
        return 0
    if args.command == "trainers":
        from nnunet_msa.cli.trainers import run_trainers
        return run_trainers(args)
    if args.command == "doctor":
        from nnunet_msa.cli.doctor import run_doctor
        return run_doctor(args)
    if args.command == "demo":
        from nnunet_msa.cli.demo import run_demo
        return run_demo(args)
    if args.command == "explain":
        from nnunet_msa.cli.explain import run_explain
        return run_explain(args)
    if args.command == "compare":
        from nnunet_msa.cli.compare import run_compare
        return run_compare(args)
    if args.command == "record-network":
        from nnunet_msa.cli.record_network import run_record_network
        return run_record_network(args)
    if args.command == "plan":
        from nnunet_msa.cli.plan import run_plan
        return run_plan(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
