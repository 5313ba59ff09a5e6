"""Which network a set of trained weights fits: the error a user sees instead of PyTorch's raw key list when a
model's weights do not fit the network built for them (a model trained with another version's default), and the
detection behind ``nnunet-msa record-network``."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

Shapes = Dict[str, Tuple[int, ...]]


class WeightsMismatchError(RuntimeError):
    """Trained weights that do not fit the network built for them; the message names the network they fit."""


def shapes_of(state_dict: Mapping[str, Any]) -> Shapes:
    """``{key: shape}`` of the tensors of a state dict (a ``module.``/``_orig_mod.`` prefix removed)."""
    out = {}
    for k, v in state_dict.items():
        if not isinstance(v, torch.Tensor):
            continue
        for prefix in ("module.", "_orig_mod."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = tuple(v.shape)
    return out


def fit(expected: Shapes, given: Shapes) -> Tuple[List[str], List[str], List[str]]:
    """(missing, unexpected, other shape): keys of ``expected`` not in ``given``, of ``given`` not in
    ``expected``, and keys in both with different shapes."""
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    other = sorted(k for k in set(expected) & set(given) if expected[k] != given[k])
    return missing, unexpected, other


def network_shapes(build: Mapping[str, Any], options: Mapping[str, Any]) -> Shapes:
    """The state dict shapes of ``MSA2UNet`` built as ``build`` (``MSA2UNet.msa2_build``) says, with ``options``
    instead of its MSA2 options; built on the meta device (no memory, no initialization)."""
    from nnunet_msa.network.msa2_unet import MSA2UNet

    kwargs = {**build["arch_kwargs"], **options, "deep_supervision": build.get("deep_supervision", False)}
    try:
        with torch.device("meta"):
            net = MSA2UNet(input_channels=build["input_channels"], num_classes=build["num_classes"], **kwargs)
    except Exception:
        net = MSA2UNet(input_channels=build["input_channels"], num_classes=build["num_classes"], **kwargs)
    return shapes_of(net.state_dict())


def presets_fitting(build: Mapping[str, Any], given: Shapes) -> List[str]:
    """The presets (``plans/``, ``plans/experiments/``) whose network, on the same plans, the weights of shapes
    ``given`` fit exactly."""
    from nnunet_msa.network.network_record import effective_options
    from nnunet_msa.network.presets import all_preset_names, resolved_options

    found = []
    for name in all_preset_names():
        try:
            shapes = network_shapes(build, effective_options(build["arch_kwargs"], resolved_options(name)))
        except Exception:
            continue
        if not any(fit(shapes, given)):
            found.append(name)
    return found


def _few(keys: List[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def mismatch_error(network: nn.Module, state_dict: Mapping[str, Any]) -> WeightsMismatchError:
    """The error for weights that do not fit ``network`` (an ``MSA2UNet``): what differs, which presets' networks
    they fit, and the command that makes the model folder say so."""
    from nnunet_msa.network.network_record import describe_record
    from nnunet_msa.network.presets import preset

    given = shapes_of(state_dict)
    missing, unexpected, other = fit(shapes_of(network.state_dict()), given)
    build: Optional[Mapping[str, Any]] = getattr(network, "msa2_build", None)
    record = (build or {}).get("record")
    built = describe_record(record) if record else "the MSA2 network of these plans"
    parts = [f"{len(keys)} {what} ({_few(keys)})" for keys, what in
             ((missing, "of its tensors are missing"), (unexpected, "tensors are not in it"),
              (other, "have another shape")) if keys]
    lines = [f"These trained weights do not fit the network built for them, {built}: {'; '.join(parts)}. The "
             f"model was trained with another network, e.g. another version's default of the same trainer name."]
    fits: List[str] = []
    if build is not None:
        try:
            fits = presets_fitting(build, given)
        except Exception as e:  # the diagnosis must never hide the error it explains
            lines.append(f"(Could not check the presets: {e})")
    if fits:
        trainers = ", ".join(f"{n} (trainer {preset(n)['trainer']})" for n in fits)
        lines.append(f"They fit the network of preset(s): {trainers}.")
        lines.append(f"If the model folder records no network (trained before nnunet-msa 0.2.0), record it once: "
                     f"nnunet-msa record-network MODEL_FOLDER --preset {fits[0]}   (MODEL_FOLDER: the "
                     f"Trainer__Plans__configuration folder), then run the command again.")
    elif build is not None:
        lines.append("No preset of this version builds a network they fit: install the nnunet-msa version the "
                     "model was trained with, or record its options with nnunet-msa record-network MODEL_FOLDER "
                     "--options '{...}'.")
    return WeightsMismatchError("\n".join(lines))
