"""Build an ``MSA2UNet`` from an nnU-Net configuration (``ConfigurationManager``), with errors that name the
problem and the fix when the plans cannot give one."""
from __future__ import annotations

import pydoc
from typing import Any, Dict, Optional

from torch import nn

from nnunet_msa.network.msa2_unet import MSA2UNet

ENCODER_OF_CLASS = {"PlainConvUNet": "plain", "ResidualEncoderUNet": "residual", "MSA2UNet": None}
REQUIRED_KEYS = ("n_stages", "features_per_stage", "conv_op", "kernel_sizes", "strides", "n_conv_per_stage_decoder")


class PlansError(ValueError):
    """The plans do not hold what the MSA2 network needs."""


def msa2_kwargs_from_plans(arch_class_name: str, arch_kwargs: Dict[str, Any], requires_import) -> Dict[str, Any]:
    """The ``MSA2UNet`` keyword arguments for a plans ``architecture`` entry (imports resolved)."""
    short = (arch_class_name or "").split(".")[-1]
    if short not in ENCODER_OF_CLASS:
        raise PlansError(
            f"The plans name the network {arch_class_name!r}; MSA2 builds on the encoders of nnU-Net's "
            f"PlainConvUNet (default nnUNetPlans) or ResidualEncoderUNet (nnUNetResEncUNet*Plans). Train with such "
            f"plans (-p nnUNetPlans) or re-run nnUNetv2_plan_and_preprocess.")
    missing = [k for k in REQUIRED_KEYS if k not in arch_kwargs]
    if short == "PlainConvUNet" and "n_conv_per_stage" not in arch_kwargs:
        missing.append("n_conv_per_stage")
    if short == "ResidualEncoderUNet" and "n_blocks_per_stage" not in arch_kwargs:
        missing.append("n_blocks_per_stage")
    if missing:
        raise PlansError(
            f"The plans' architecture.arch_kwargs lack {missing}, which the MSA2 network needs to build on the "
            f"planned encoder. The plans file is incomplete or from an old nnU-Net: re-plan with nnUNetv2 >= 2.4 "
            f"(nnUNetv2_plan_and_preprocess).")
    kwargs = dict(arch_kwargs)
    for key in requires_import or ():
        if kwargs.get(key) is not None and isinstance(kwargs[key], str):
            located = pydoc.locate(kwargs[key])
            if located is None:
                raise PlansError(f"The plans name {key}={kwargs[key]!r}, which cannot be imported. Fix the plans "
                                 f"file or install the package that provides it.")
            kwargs[key] = located
    if ENCODER_OF_CLASS[short] is not None:
        kwargs["encoder"] = ENCODER_OF_CLASS[short]
    return kwargs


def check_msa2_options(options: Dict[str, Any]) -> None:
    """Unknown ``MSA2UNet`` option names fail here, naming the known ones (not at the first training)."""
    import inspect

    known = set(inspect.signature(MSA2UNet.__init__).parameters) - {"self"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown MSA2UNet option(s) {unknown}; the options are {sorted(known)}.")


def plans_conflicts(arch_kwargs: Dict[str, Any], class_options: Dict[str, Any]) -> Dict[str, Any]:
    """``{option: (plans' value, class's value)}`` where the plans' ``arch_kwargs`` and a trainer's options both
    give an MSA2 option and disagree (options that change memory and time only are not compared)."""
    from nnunet_msa.network.network_record import RUNTIME_OPTIONS, msa2_option_names, option_differences

    shared = (set(arch_kwargs) & set(class_options) & set(msa2_option_names())) - set(RUNTIME_OPTIONS)
    return option_differences({k: arch_kwargs[k] for k in shared}, {k: class_options[k] for k in shared})


def build_msa2_network(configuration_manager, num_input_channels: int, num_output_channels: int,
                       enable_deep_supervision: bool = True, record: Optional[Dict[str, Any]] = None,
                       **msa2_options: Any) -> nn.Module:
    """``MSA2UNet`` on the encoder the configuration plans; its MSA2 options are the network record's
    (``network/network_record.py``: what a trained model was built with) when given, else ``msa2_options``
    over the plans' MSA2 options. The network keeps how it was built in ``msa2_build`` (for the error on weights
    that do not fit it)."""
    from nnunet_msa.network.network_record import msa2_option_names, recorded_options

    kwargs = msa2_kwargs_from_plans(configuration_manager.network_arch_class_name,
                                    configuration_manager.network_arch_init_kwargs,
                                    configuration_manager.network_arch_init_kwargs_req_import)
    kwargs.update(recorded_options(record) if record is not None else msa2_options)
    kwargs["deep_supervision"] = enable_deep_supervision
    try:
        network = MSA2UNet(input_channels=num_input_channels, num_classes=num_output_channels, **kwargs)
    except TypeError as e:
        raise PlansError(f"The plans' arch_kwargs do not fit the MSA2 network ({e}). Use nnU-Net's default or "
                         f"ResEnc plans, or remove the unknown entries.") from e
    network.apply(network.initialize)
    names = set(msa2_option_names())
    network.msa2_build = {"arch_kwargs": {k: v for k, v in kwargs.items() if k not in names | {"deep_supervision"}},
                          "input_channels": num_input_channels, "num_classes": num_output_channels,
                          "deep_supervision": enable_deep_supervision, "record": record}
    return network
