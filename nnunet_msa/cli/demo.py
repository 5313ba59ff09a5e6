"""``nnunet-msa demo``: make a small dataset (synthetic by default, or a subset of an MSD task or of an nnU-Net raw
dataset), then run nnU-Net's real commands in subprocesses: plan and preprocess, train nnU-Net's default trainer and
nnUNetTrainerMSA2 on one budget, predict held-out cases that no training saw, and print a Dice table.

Everything goes into one workspace folder (by default ``~/nnunet_msa_demo``, outside any checkout): ``nnUNet_raw``,
``nnUNet_preprocessed``, ``nnUNet_results``, ``logs``, ``predictions``, ``heldout_labels``, ``results.json``,
``results.md``; nnU-Net's own output goes to ``logs/``. A workspace inside a git checkout of nnunet-msa gets a warning.
While nnU-Net trains, a line per epoch (one updating line on a terminal): pseudo Dice, epoch time, time left. At the
end, the closing table and what it means (also in ``results.md``). This module parses the flags and prints; the data,
the steps, the progress and the closing text are ``pipeline/demo_data.py``, ``demo_run.py``, ``demo_progress.py``
and ``demo_report.py``.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from typing import Optional, TextIO

from nnunet_msa.pipeline.commands import CommandFailed
from nnunet_msa.pipeline.demo_data import DEFAULTS, DemoError, fill_defaults
from nnunet_msa.pipeline.demo_progress import duration
from nnunet_msa.pipeline.demo_report import format_closing
from nnunet_msa.pipeline.demo_run import DEFAULT_WORKSPACE, prepare_workspace, run_pipeline, workspace_warning

TRAINERS = ("nnUNetTrainer_budget", "nnUNetTrainerMSA2_budget")


# ----------------------------------------------------------------------------------------------------------- CLI
def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``demo`` sub-command's flags."""
    src = parser.add_argument_group("data (default: a synthetic dataset generated on the spot)")
    src_x = src.add_mutually_exclusive_group()
    src_x.add_argument("--msd", metavar="PATH", help="an MSD task folder (e.g. Task04_Hippocampus); a subset is "
                                                     "converted with nnUNetv2_convert_MSD_dataset")
    src_x.add_argument("--nnunet-raw-dataset", metavar="PATH", help="an nnU-Net v2 raw dataset folder (imagesTr, "
                                                                    "labelsTr, dataset.json); a subset is used")
    src.add_argument("--cases", type=int, default=None,
                     help="cases for training + validation (default 20)")
    src.add_argument("--test-cases", type=int, default=None,
                     help="held-out cases to predict and score, never trained on (default 4)")
    src.add_argument("--val-cases", type=int, default=DEFAULTS["val_cases"],
                     help="of --cases, how many nnU-Net validates on (split fold 0) instead of training on (default 2)")
    src.add_argument("--shape", default="24,48,48", help="synthetic volume shape z,y,x (default 24,48,48)")
    src.add_argument("--spacing", default="2.0,1.0,1.0", help="synthetic voxel spacing z,y,x in mm (default 2.0,1.0,1.0)")
    src.add_argument("--group-pattern", default=r"^(.*?)(?:_frame\d+)?$",
                     help="regex whose group 1 names the patient of a case; cases of one patient stay on one side "
                          "of the train/held-out split (the default groups ACDC's frames by patient)")
    src.add_argument("--dataset-id", type=int, default=900, help="nnU-Net dataset ID inside the workspace (default 900)")
    src.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and the case selection (default 0)")
    run = parser.add_argument_group("nnU-Net run")
    run.add_argument("--workspace", default=None,
                     help=f"folder for everything (default: {DEFAULT_WORKSPACE}, or {DEFAULT_WORKSPACE}_N if "
                          f"that exists and is not empty)")
    run.add_argument("--overwrite", action="store_true",
                     help="reuse --workspace from an earlier demo, deleting what that demo wrote there")
    run.add_argument("--configuration", default="3d_fullres", choices=("3d_fullres", "2d"),
                     help="nnU-Net configuration to plan and train (default 3d_fullres)")
    run.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"],
                     help="batch size of a configuration inheriting the planned one (default 2; 0: the planned batch size)")
    run.add_argument("--epochs", type=int, default=None,
                     help="epochs of each trainer (default 5 synthetic, 4 --msd/--nnunet-raw-dataset)")
    run.add_argument("--iterations", type=int, default=None,
                     help="training iterations per epoch (default 14 synthetic, 12 --msd/--nnunet-raw-dataset)")
    run.add_argument("--val-iterations", type=int, default=DEFAULTS["val_iterations"],
                     help="validation iterations per epoch (default 1)")
    run.add_argument("--trainers", nargs="+", default=list(TRAINERS), metavar="TRAINER",
                     help="trainers to compare on the same budget (default: %(default)s)")
    run.add_argument("--tta", action="store_true",
                     help="predict the held-out cases with nnU-Net's test-time mirroring (up to 8x the prediction "
                          "time; nnU-Net's own end-of-training validation always mirrors)")
    run.add_argument("--processes", type=int, default=2, help="processes for conversion and preprocessing (default 2)")
    run.add_argument("--verbose", action="store_true", help="also echo nnU-Net's output (always in logs/)")


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo; 0 on success, 1 when an nnU-Net command failed, 2 on bad inputs."""
    progress = Progress()
    workspace: Optional[str] = None
    try:
        fill_defaults(args)
        workspace = prepare_workspace(args.workspace, args.overwrite)
        progress.say(f"workspace: {workspace}")
        warning = workspace_warning(workspace)
        if warning:
            progress.say(warning)
        result = run_pipeline(args, workspace, progress)
    except CommandFailed as e:
        progress.fail(e, workspace)
        return 1
    except DemoError as e:
        progress.close_line()
        print(f"nnunet-msa demo: {e}", file=sys.stderr, flush=True)
        return 2
    print(f"\nWhat you just saw ({result['dataset']}):\n", flush=True)
    print(format_closing(result))
    print()
    progress.say(f"done in {duration(progress.elapsed())}; workspace: {workspace} (this summary in results.md, "
                 f"every number in results.json, nnU-Net's output in logs/)")
    return 0


# ---------------------------------------------------------------------------------------------------- progress
class Progress:
    """Prints steps with the elapsed time since the demo started; ``live`` lines (one per training epoch) update one
    line in place on a terminal wide enough for them, and are plain lines otherwise (CI logs, pipes)."""

    def __init__(self, out: Optional[TextIO] = None) -> None:
        self.start = time.time()
        self.current_log: Optional[str] = None
        self.out = out if out is not None else sys.stdout
        self.tty = self.out.isatty()
        self.line_open = False

    def elapsed(self) -> float:
        return time.time() - self.start

    def stamp(self, message: str) -> str:
        minutes, seconds = divmod(int(self.elapsed()), 60)
        return f"[{minutes:3d}:{seconds:02d}] {message}"

    def say(self, message: str) -> None:
        self.close_line()
        print(self.stamp(message), file=self.out, flush=True)

    def live(self, message: str) -> None:
        """A line that the next ``live`` line replaces on a terminal (it stays once another ``say`` follows)."""
        text = self.stamp(message)
        if not self.tty or len(text) >= shutil.get_terminal_size().columns:
            self.say(message)
            return
        self.out.write("\r\033[K" + text)
        self.out.flush()
        self.line_open = True

    def close_line(self) -> None:
        """End a ``live`` line left open on the terminal."""
        if self.line_open:
            self.out.write("\n")
            self.out.flush()
            self.line_open = False

    def step(self, title: str, log_path: Optional[str] = None) -> None:
        self.current_log = log_path
        self.say(title + (f"  (log: {log_path})" if log_path else ""))

    def fail(self, error: CommandFailed, workspace: Optional[str] = None) -> None:
        self.say("FAILED" + (f" (workspace: {workspace})" if workspace else ""))
        print(str(error), file=sys.stderr)
        if self.current_log:
            print(f"full log: {self.current_log}", file=sys.stderr)
        sys.stderr.flush()
