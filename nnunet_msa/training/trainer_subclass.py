"""Trainer classes made at import time (presets, budget and epoch variants, architecture trainers) the way nnU-Net
needs them: nnU-Net finds a trainer by its class name among the module attributes of its trainer folders
(``recursive_find_python_class``), and pickling (DDP workers, ``torch.compile`` caches) finds it by ``__module__`` and
``__qualname__``. Bind the result to a module attribute of the same name.
"""
from __future__ import annotations

from typing import Any, Tuple


def trainer_subclass(name: str, bases: Tuple[type, ...], module: str, doc: str, **attributes: Any) -> type:
    """``class <name>(*bases)`` with ``attributes``, defined in ``module``."""
    return type(name, tuple(bases), {"__module__": module, "__qualname__": name, "__doc__": doc, **attributes})
