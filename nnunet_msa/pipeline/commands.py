"""Find nnU-Net's console scripts, run one in a subprocess, log its output, and fail with the command and its last
lines."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from typing import Callable, Dict, Optional, Sequence


class CommandFailed(RuntimeError):
    """An nnU-Net command exited non-zero."""


def console_script(name: str) -> str:
    """Path of an installed console script (``nnUNetv2_train``, ``nnunet-msa``): beside this interpreter first (a
    venv that is not on PATH), else on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.isfile(beside):
        return beside
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is neither beside {sys.executable} nor on PATH: install nnunetv2 and "
                                f"nnunet-msa into this environment (pip install -e .)")
    return found


def run_command(args: Sequence[str], env: Dict[str, str], log_path: Optional[str] = None,
                echo: bool = False, timeout: Optional[float] = None,
                on_line: Optional[Callable[[str], None]] = None, append: bool = False) -> float:
    """Run ``args`` with ``env``; write stdout+stderr to ``log_path``, hand each line to ``on_line`` as it comes;
    return the wall time in seconds. ``append`` adds to an existing log instead of replacing it.

    Raises ``CommandFailed`` naming the command and quoting the last 40 lines of its output."""
    start = time.time()
    if log_path:
        os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    out = open(log_path, "a" if append else "w") if log_path else subprocess.PIPE
    try:
        proc = subprocess.Popen(list(args), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                bufsize=1)
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if log_path:
                out.write(line)
                out.flush()
            if echo:
                sys.stdout.write(line)
            if on_line is not None:
                on_line(line.rstrip("\n"))
        code = proc.wait(timeout=timeout)
    finally:
        if log_path:
            out.close()
    if code != 0:
        tail = "".join(lines[-40:])
        raise CommandFailed(f"command failed (exit {code}): {' '.join(args)}\n--- last output ---\n{tail}")
    return time.time() - start
