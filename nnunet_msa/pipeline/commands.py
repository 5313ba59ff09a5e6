"""Run an nnU-Net command in a subprocess, log its output, and fail with the command and its last lines."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Dict, Optional, Sequence


class CommandFailed(RuntimeError):
    """An nnU-Net command exited non-zero."""


def run_command(args: Sequence[str], env: Dict[str, str], log_path: Optional[str] = None,
                echo: bool = False, timeout: Optional[float] = None) -> float:
    """Run ``args`` with ``env``; write stdout+stderr to ``log_path``; return the wall time in seconds.

    Raises ``CommandFailed`` naming the command and quoting the last 40 lines of its output."""
    start = time.time()
    if log_path:
        os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    out = open(log_path, "w") if log_path else subprocess.PIPE
    try:
        proc = subprocess.Popen(list(args), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                bufsize=1)
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if log_path:
                out.write(line)
            if echo:
                sys.stdout.write(line)
        code = proc.wait(timeout=timeout)
    finally:
        if log_path:
            out.close()
    if code != 0:
        tail = "".join(lines[-40:])
        raise CommandFailed(f"command failed (exit {code}): {' '.join(args)}\n--- last output ---\n{tail}")
    return time.time() - start
