"""Session data built once for all pytest-xdist workers and copied into each worker's own workspace.

The workers of one ``pytest -n 2`` session share their basetemps' parent folder (pytest-xdist's documented pattern).
The first worker to ask builds there, under a file lock; every worker then gets its own copy, so whatever a test
writes (plans, configurations, splits, trained models) stays in its worker, exactly as if it had built the data
itself. Without pytest-xdist the build goes to the session's own basetemp."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

from filelock import FileLock

COMPLETE = ".complete"


def shared_root(tmp_path_factory) -> Path:
    """The folder every worker of this session sees: the basetemps' parent under pytest-xdist (``.../pytest-N``),
    the session's basetemp otherwise (the parent would be shared with other sessions)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """``<shared root>/shared_<name>``, built by ``build(folder)`` by the first worker that asks; the others wait on
    the lock and reuse it. A build that raised leaves no completion mark, so the next worker builds again (and
    fails with its own message)."""
    root = shared_root(tmp_path_factory)
    target = root / f"shared_{name}"
    with FileLock(str(root / f"shared_{name}.lock")):
        if not (target / COMPLETE).is_file():
            if target.exists():
                shutil.rmtree(target)
            target.mkdir()
            build(target)
            (target / COMPLETE).touch()
    return target


def copy_into(source: Path, destination: Path) -> None:
    """Copy the folder ``source`` to ``destination`` (created; symbolic links kept as links), without the mark."""
    shutil.copytree(source, destination, symlinks=True, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(COMPLETE))
