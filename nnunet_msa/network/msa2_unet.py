"""MSA2UNet: nnU-Net's planned encoder (``PlainConvEncoder`` or ``ResidualEncoder``, reused as they are) with
MSConvBridge on the skips, MASAG gates and the SACM-based MSADecoder; or, by constructor option, the other papers'
parts in the same slots: skip gates (FIAS CAF, Attention U-Net, CBAM, SE), multi-scale convs (FIAS DMK, selective
kernel), QTSeg's MLFD skip redistribution and its dual-mix attention decoder.

It takes the plans' ``arch_kwargs`` of ``PlainConvUNet`` or ``ResidualEncoderUNet`` unchanged, plus the MSA2
options, so it can also be named directly as ``network_class_name`` in a plans file
(``nnunet_msa.network.msa2_unet.MSA2UNet``) and built by nnU-Net's ``get_network_from_plans``.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Type, Union

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd

from dynamic_network_architectures.building_blocks.plain_conv_encoder import PlainConvEncoder
from dynamic_network_architectures.building_blocks.residual import BasicBlockD, BottleneckD
from dynamic_network_architectures.building_blocks.residual_encoders import ResidualEncoder
from dynamic_network_architectures.initialization.weight_init import InitWeights_He, init_last_bn_before_add_to_0

from nnunet_msa.blocks.adaptive_conv_block import AdaptiveConvNormAct
from nnunet_msa.blocks.dual_mix_attention import DualMixAttention
from nnunet_msa.blocks.masag import MASAG
from nnunet_msa.blocks.mlfd import MultiLevelFeatureDistribution
from nnunet_msa.blocks.multiscale_conv import check_multiscale_conv
from nnunet_msa.blocks.geometry import conv_dim
from nnunet_msa.blocks.multiscale_conv import MultiScaleConvConfig
from nnunet_msa.blocks.skip_gates import check_skip_gate
from nnunet_msa.network.bridged_unet_decoder import BridgedUNetDecoder
from nnunet_msa.network.mirror_batching import MirrorBatcher, is_compiling
from nnunet_msa.network.msa_decoder import MSADecoder
from nnunet_msa.network.qtseg_decoder import QTSegDecoder

ENCODERS = ("plain", "residual")
DECODERS = ("msa", "nnunet", "qtseg")
SKIP_REDISTRIBUTIONS = ("none", "mlfd")


class MSA2UNet(nn.Module):
    """(B, input_channels, *patch) -> logits (B, num_classes, *patch), or the deep-supervision list.

    Encoder arguments are those of dynamic_network_architectures' ``PlainConvUNet`` (``n_conv_per_stage``) and
    ``ResidualEncoderUNet`` (``n_blocks_per_stage``, ``block``, ``bottleneck_channels``, ``stem_channels``);
    ``encoder`` picks one and defaults to "residual" when ``n_blocks_per_stage`` is given.

    MSA2 options: ``use_bridge``, ``use_masag``, ``use_sacm`` (False: static convs of the planned size),
    ``n_bridge`` (blocks per bridge), ``sacm_candidates`` (K), ``sacm_realization``, ``sacm_reduction`` (r),
    ``sacm_fingerprint`` ("responses" or "input"), ``sacm_form`` (how an input-fingerprint SACM computes: "auto",
    "kernel", "outputs"); ``init``: "he" (nnU-Net's) or "static" (SACM starts as its first candidate, the bridge and
    the decoder's residual blocks at zero, MASAG as the identity on the skip: MSA2 starts close to nnU-Net's
    network and adds to it);
    placement: ``bridge_stages``, ``masag_stages``, ``sacm_stages`` (how many decoder stages, from the lowest
    resolution up, get the module; None: all); ``residual_static_stages`` (False: decoder stages without SACM are
    nnU-Net's plain conv sequence instead of the residual form); ``recompute`` (keep only the inputs of SACM blocks and MASAG
    gates for backward and rerun them then: less memory, one more forward of those blocks); ``decoder``: "msa"
    (``MSADecoder``) or "nnunet" (nnU-Net's ``UNetDecoder`` with the bridge only, ``BridgedUNetDecoder``; it has no
    gates, so ``use_masag`` must be False, and SACM is used in the bridge only) or "qtseg" (``QTSegDecoder``:
    the MSA decoder's stages with QTSeg's dual-mix attention and per-class query tokens).

    Other papers' parts in MSA2's slots: ``skip_gate`` (in MASAG's place: "masag", "caf", "attention_gate",
    "cbam", "se", "none"; default "masag", or "none" when ``use_masag`` is False),
    ``sacm_dilations`` (SACM's candidates planned from the data, issue 19: one entry per skip level, highest
    resolution first like ``kernel_sizes``, each ``sacm_candidates`` per-axis dilations; written by the MSA2
    planners, ``planning/candidate_plan.py``; None: dilations 1, ..., K everywhere), ``multiscale_conv`` (in SACM's
    place: "sacm", "dmk", "selective_kernel", "static"; default "sacm", or "static" when ``use_sacm`` is False),
    ``skip_redistribution`` ("none" or "mlfd": QTSeg's multi-level feature distribution over all encoder outputs).

    ``mirror_batching``: in prediction on CPU, the mirrored copies of a tile that nnU-Net's predictor asks for one by
    one are evaluated in one batch (``network/mirror_batching.py``; same results, fewer passes).
    """

    def __init__(
        self,
        input_channels: int,
        n_stages: int,
        features_per_stage: Union[int, Sequence[int]],
        conv_op: Type[_ConvNd],
        kernel_sizes: Union[int, Sequence],
        strides: Union[int, Sequence],
        num_classes: int,
        n_conv_per_stage_decoder: Union[int, Sequence[int]],
        n_conv_per_stage: Union[None, int, Sequence[int]] = None,
        n_blocks_per_stage: Union[None, int, Sequence[int]] = None,
        conv_bias: bool = False,
        norm_op: Optional[Type[nn.Module]] = None,
        norm_op_kwargs: Optional[dict] = None,
        dropout_op: Optional[Type[nn.Module]] = None,
        dropout_op_kwargs: Optional[dict] = None,
        nonlin: Optional[Type[nn.Module]] = None,
        nonlin_kwargs: Optional[dict] = None,
        deep_supervision: bool = False,
        nonlin_first: bool = False,
        block: Union[Type[BasicBlockD], Type[BottleneckD]] = BasicBlockD,
        bottleneck_channels: Union[None, int, Sequence[int]] = None,
        stem_channels: Optional[int] = None,
        encoder: Optional[str] = None,
        use_bridge: bool = True,
        use_masag: bool = True,
        use_sacm: bool = True,
        n_bridge: int = 2,
        sacm_candidates: int = 3,
        sacm_realization: str = "dilated",
        sacm_reduction: int = 4,
        sacm_fingerprint: str = "responses",
        sacm_form: str = "auto",
        init: str = "he",
        bridge_stages: Optional[int] = None,
        masag_stages: Optional[int] = None,
        sacm_stages: Optional[int] = None,
        recompute: Union[bool, str] = False,
        residual_static_stages: bool = True,
        decoder: str = "msa",
        skip_gate: Optional[str] = None,
        multiscale_conv: Optional[str] = None,
        skip_redistribution: str = "none",
        sacm_dilations: Optional[Sequence] = None,
        mirror_batching: bool = True,
    ) -> None:
        super().__init__()
        encoder = encoder or ("residual" if n_blocks_per_stage is not None else "plain")
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}.")
        if isinstance(features_per_stage, int):
            features_per_stage = [features_per_stage] * n_stages
        if n_stages < 2:
            raise ValueError(f"MSA2UNet needs at least 2 stages (one skip), the plans give n_stages={n_stages}.")
        if len(features_per_stage) != n_stages:
            raise ValueError(f"features_per_stage has {len(features_per_stage)} entries for n_stages={n_stages}.")
        self.input_channels = input_channels
        self.num_classes = num_classes
        self.conv_op = conv_op
        multiscale_conv = check_multiscale_conv(multiscale_conv or ("sacm" if use_sacm else "static"))
        skip_gate = check_skip_gate(skip_gate or ("masag" if use_masag else "none"))
        if skip_redistribution not in SKIP_REDISTRIBUTIONS:
            raise ValueError(f"skip_redistribution must be one of {SKIP_REDISTRIBUTIONS}, got {skip_redistribution!r}.")
        self.skip_gate, self.multiscale_conv, self.skip_redistribution = skip_gate, multiscale_conv, skip_redistribution
        self.sacm_config = MultiScaleConvConfig(multiscale_conv != "static", sacm_candidates, sacm_realization,
                                                sacm_reduction, kind=multiscale_conv, fingerprint=sacm_fingerprint,
                                                init=init, form=sacm_form)
        common = dict(conv_bias=conv_bias, norm_op=norm_op, norm_op_kwargs=norm_op_kwargs, dropout_op=dropout_op,
                      dropout_op_kwargs=dropout_op_kwargs, nonlin=nonlin, nonlin_kwargs=nonlin_kwargs,
                      return_skips=True)
        if encoder == "plain":
            if n_conv_per_stage is None:
                raise ValueError("a plain encoder needs n_conv_per_stage (PlainConvUNet plans); ResEnc plans give "
                                 "n_blocks_per_stage instead.")
            self.encoder = PlainConvEncoder(input_channels, n_stages, features_per_stage, conv_op, kernel_sizes,
                                            strides, n_conv_per_stage, nonlin_first=nonlin_first, **common)
        else:
            if n_blocks_per_stage is None:
                raise ValueError("a residual encoder needs n_blocks_per_stage (ResidualEncoderUNet plans).")
            self.encoder = ResidualEncoder(input_channels, n_stages, features_per_stage, conv_op, kernel_sizes,
                                           strides, n_blocks_per_stage, block=block,
                                           bottleneck_channels=bottleneck_channels, stem_channels=stem_channels,
                                           **common)
        self.encoder_type = encoder
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}.")
        self.mlfd = (MultiLevelFeatureDistribution(conv_op, self.encoder.output_channels, self.encoder.strides,
                                                   norm_op, norm_op_kwargs)
                     if skip_redistribution == "mlfd" else None)
        if decoder == "nnunet":
            if skip_gate != "none":
                raise ValueError("decoder='nnunet' is nnU-Net's UNetDecoder, which has no skip gates: pass "
                                 "use_masag=False / skip_gate='none' (or decoder='msa' for the gates).")
            self.decoder = BridgedUNetDecoder(self.encoder, num_classes, n_conv_per_stage_decoder, deep_supervision,
                                              self.sacm_config, n_bridge, bridge_stages if use_bridge else 0,
                                              nonlin_first, sacm_dilations)
        else:
            decoder_cls = QTSegDecoder if decoder == "qtseg" else MSADecoder
            self.decoder = decoder_cls(self.encoder, num_classes, n_conv_per_stage_decoder, deep_supervision,
                                       self.sacm_config, use_bridge, skip_gate != "none", n_bridge, bridge_stages,
                                       masag_stages, sacm_stages, skip_gate, residual_static_stages, sacm_dilations)
        self.decoder_kind = decoder
        self.set_recompute(recompute)
        self.mirror_batcher = MirrorBatcher(mirror_batching)

    def set_recompute(self, enabled: Union[bool, str]) -> None:
        """Recompute in backward instead of keeping activations (``nnunet_msa.blocks.recompute``): True the
        multi-scale conv blocks (SACM, DMK, selective kernel), the MASAG gates and the dual-mix attention blocks;
        "gates" the gates (MASAG, dual-mix attention) only; "blocks" the multi-scale conv blocks only; False nothing.
        Static blocks and the encoder are nnU-Net's and keep theirs."""
        if enabled not in (False, True, "gates", "blocks"):
            raise ValueError(f"recompute must be True, False, 'gates' or 'blocks', got {enabled!r}.")
        self.recompute = enabled
        for m in self.decoder.modules():
            if isinstance(m, (MASAG, DualMixAttention)):
                m.recompute = enabled in (True, "gates")
            elif isinstance(m, AdaptiveConvNormAct) and m.is_multiscale:
                m.recompute = enabled in (True, "blocks")

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict``; weights that do not fit raise ``WeightsMismatchError`` naming the network
        they were trained with (``network/weights_fit.py``) instead of PyTorch's list of keys."""
        try:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        except RuntimeError as e:
            from nnunet_msa.network.weights_fit import mismatch_error
            raise mismatch_error(self, state_dict) from e

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, List[torch.Tensor]]:
        dim = conv_dim(self.conv_op)
        if x.dim() != dim + 2:
            hint = ("a 2d configuration takes slices (B, C, X, Y)" if dim == 2
                    else "a 3d configuration takes patches (B, C, X, Y, Z)")
            raise ValueError(f"MSA2UNet was built for {dim}D input, got a tensor of shape {tuple(x.shape)}: {hint}. "
                             f"Use the configuration the model was trained with.")
        if x.shape[1] != self.input_channels:
            raise ValueError(f"MSA2UNet was built for {self.input_channels} input channel(s) (from the plans and "
                             f"dataset.json), got {x.shape[1]}. Give the same channels (modalities) as in training: "
                             f"nnU-Net reads channel i of a case from CASE_{{i:04d}} (here CASE_0000 ... "
                             f"CASE_{self.input_channels - 1:04d}).")
        if not is_compiling() and self.mirror_batcher.applies(x, self.training):
            return self.mirror_batcher(self._forward, x, [*self.parameters(), *self.buffers()])
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> Union[torch.Tensor, List[torch.Tensor]]:
        skips = self.encoder(x)
        if self.mlfd is not None:
            skips = self.mlfd(skips)
        return self.decoder(skips)

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> int:
        """nnU-Net's memory proxy: feature-map elements for one sample of spatial ``input_size``."""
        if len(input_size) != conv_dim(self.conv_op):
            raise ValueError("give the spatial size only, e.g. (x, y, z), not (b, c, x, y, z)")
        mlfd = self.mlfd.compute_conv_feature_map_size(input_size) if self.mlfd is not None else 0
        return int(self.encoder.compute_conv_feature_map_size(input_size)
                   + self.decoder.compute_conv_feature_map_size(input_size) + mlfd)

    @staticmethod
    def initialize(module: nn.Module) -> None:
        """nnU-Net's init: He (neg. slope 1e-2) for convs, zero last norm of residual blocks."""
        InitWeights_He(1e-2)(module)
        init_last_bn_before_add_to_0(module)
