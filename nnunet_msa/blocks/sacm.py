"""SACM: self-adaptive convolution module (MSA2-Net with SACM in nnU-Net, Sec. "Self-adaptive convolution
module"; its equations were lost in extraction and are fixed in ``docs/design.md``).

A convolution whose kernel is a per-sample soft mixture of K candidate kernels with growing receptive fields:

    r_k = conv_k(x)                                  (candidate responses, k = 1..K)
    f   = fingerprint                                (float32; ``sacm_fingerprint.py``)
            "responses": [mean_S(r_k), std_S(r_k)]_k             (B, 2·K·C_k)
            "input":     [μ(x), σ(x), std(P_k x) / σ(x)]_k       (B, (K + 2)·C_in), before any candidate runs
                         (P_k: average pooling over 2^k voxels per widened axis)
    π   = softmax(MLP(f) / τ)                        (attention over candidates, (B, K), float32)
    y   = Σ_k π_k · r_k + b                          ("outputs" form)
        = conv(x, Σ_k π_k · Ŵ_k) + b                 ("kernel" form, Ŵ_k on the largest grid: one convolution)

With the ``responses`` fingerprint π needs the responses, so ``forward`` runs the outputs form. With the ``input``
fingerprint ``forward`` runs the form ``form`` names ("auto": the kernel form for ``separable``, whose per-sample
depthwise kernel is one memory-bound pass instead of K responses and their mixing, and for ``split``, whose
candidates act on disjoint input groups, so the per-sample kernel is the input scaled per group; the outputs form for the dense
realizations, whose embedded 7-tap kernels would cost 49/27 (2D) to 343/81 (3D) times the candidates' taps). The
per-sample depthwise convolution has a hand-written backward (``per_sample_conv``): on CPU its kernel gradient is
otherwise 10-45x the forward.
``forward_kernel_form`` / ``forward_outputs_form`` run either form for any fingerprint, so tests hold both (and a
naive per-sample loop) to each other.

Initialization ``init``: "he" (nnU-Net's ``InitWeights_He(1e-2)`` on every candidate) or "static": candidates
beyond the first start at zero, so that SACM starts as the static operation of its first candidate, scaled per sample
by π_1 (the norm after it removes the scale).
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple, Type, Union

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd

from nnunet_msa.blocks.fast_conv import channels_last, fast_conv, pointwise_conv
from nnunet_msa.blocks.geometry import as_per_axis, conv_dim
from nnunet_msa.blocks.fused_ops import mix_candidates, spatial_mean_std
from nnunet_msa.blocks.per_sample_conv import mix_kernels, per_sample_conv
from nnunet_msa.blocks.sacm_fingerprint import input_fingerprint, input_fingerprint_size
from nnunet_msa.blocks.separable_mixture import separable_mixture

REALIZATIONS = ("dilated", "dense", "separable", "shared", "split", "bottleneck")
FINGERPRINTS = ("responses", "input")
INITS = ("he", "static")
FORMS = ("auto", "kernel", "outputs")


def check_options(realization: str, fingerprint: str, init: str, form: str) -> None:
    """Errors naming the choices for unknown SACM options."""
    for name, value, choices in (("realization", realization, REALIZATIONS), ("fingerprint", fingerprint,
                                 FINGERPRINTS), ("init", init, INITS), ("form", form, FORMS)):
        if value not in choices:
            raise ValueError(f"SACM {name} must be one of {choices}, got {value!r}.")
    if init == "static" and realization == "shared":
        raise ValueError("SACM init='static' zeroes the candidates beyond the first, which 'shared' cannot (one "
                         "tensor for all dilations): use realization 'dilated', 'dense' or 'separable', or init='he'.")
    if fingerprint == "responses" and form == "kernel":
        raise ValueError("SACM form='kernel' needs fingerprint='input' (the responses fingerprint needs every "
                         "candidate's response before the kernel could be mixed).")


def bottleneck_width(in_channels: int) -> int:
    """C_r of the ``bottleneck`` realization: a quarter of C_in, at least 8 (all of C_in when it has fewer)."""
    return min(in_channels, max(in_channels // 4, 8))


def split_channels(channels: int, parts: int, split: bool) -> Tuple[slice, ...]:
    """``parts`` slices of range(channels): near-equal consecutive groups (the first ones one larger) when ``split``,
    else the whole range for each part."""
    if not split:
        return (slice(0, channels),) * parts
    base, extra = divmod(channels, parts)
    bounds = [0]
    for j in range(parts):
        bounds.append(bounds[-1] + base + (1 if j < extra else 0))
    return tuple(slice(a, b) for a, b in zip(bounds[:-1], bounds[1:]))


def default_dilations(kernel_size: Sequence[int], num_candidates: int) -> Tuple[Tuple[int, ...], ...]:
    """Candidate j at dilation j on every axis with k > 1 (receptive fields 3, 5, 7 for kernel 3, K = 3)."""
    return tuple(tuple(j if k > 1 else 1 for k in kernel_size) for j in range(1, num_candidates + 1))


def check_dilations(dilations: Optional[Sequence[Sequence[int]]], kernel_size: Sequence[int],
                    num_candidates: int) -> Tuple[Tuple[int, ...], ...]:
    """The candidates' per-axis dilations (``default_dilations`` for None), checked against the kernel: K entries of
    one positive integer per axis, 1 on axes planned with kernel 1."""
    if dilations is None:
        return default_dilations(kernel_size, num_candidates)
    out = tuple(tuple(int(v) for v in d) for d in dilations)
    if len(out) != num_candidates:
        raise ValueError(f"SACM has K={num_candidates} candidates but {len(out)} dilations were given ({list(out)}): "
                         f"plan the candidates with the same K (sacm_candidates) or drop sacm_dilations.")
    for d in out:
        if len(d) != len(kernel_size) or any(v < 1 for v in d):
            raise ValueError(f"SACM dilations need one positive integer per axis ({len(kernel_size)}), got {list(d)}.")
        if any(k == 1 and v != 1 for k, v in zip(kernel_size, d)):
            raise ValueError(f"SACM dilation {list(d)} widens an axis planned with kernel 1 (kernel "
                             f"{list(kernel_size)}): keep those axes at dilation 1.")
    return out


class SACM(nn.Module):
    """Self-adaptive convolution, (B, C_in, *S) -> (B, C_out, *S), stride 1, 'same' padding.

    Args:
        conv_op: ``nn.Conv2d`` or ``nn.Conv3d`` (sets the dimensionality).
        in_channels, out_channels: C_in, C_out.
        kernel_size: the planned kernel, per axis. An axis planned with kernel 1 stays 1 in every candidate; an axis
            with odd kernel k gets candidates of receptive field (k - 1)·j + 1, j = 1..K (3, 5, 7 for k = 3).
        num_candidates: K.
        realization:
            ``dilated``: candidate j is a k-tap kernel W_j at dilation j;
            ``dense``: candidate j is a dense kernel of size (k - 1)·j + 1;
            ``separable``: depthwise dilated candidates on C_in mixed per sample, then one pointwise C_in -> C_out;
            ``shared``: one k-tap kernel applied at dilations 1..K;
            ``split``: candidate j is a dense k-tap kernel at dilation j on the j-th of K near-equal groups of the
            input channels (zero on the others; ``input_groups``), so the K candidates together have one static
            conv's weights and FLOPs (a pyramidal convolution mixed per sample). Its kernel form scales input group
            j by π_j and sums the K group convolutions: y = Σ_j W_j *_{d_j} (π_j · x_j) + b, Eq. of ``forward``.
            ``bottleneck``: candidate 1 is a full k-tap kernel W_1 on x at dilation d_1; the wider ones act on a
            1×1-reduced input z = R x of C_r = ``bottleneck_width(C_in)`` channels (W_j: C_out × C_r, j ≥ 2), so
            every output channel still sees every input channel at every dilation, for about 1.5 convs' FLOPs
            instead of K. Its kernel form scales the inputs per sample:
            y = W_1 *_{d_1} (π_1 · x) + Σ_{j≥2} W_j *_{d_j} (π_j · z) + b.
        reduction: gate hidden width max(C // reduction, 8), C = C_k (C_out; C_in for ``separable``) for the
            responses fingerprint, C_in for the input fingerprint.
        bias: add a learned bias b (C_out).
        eps: added to the variance of the fingerprint before the square root.
        fingerprint: "responses" or "input" (module docstring).
        init: "he" or "static" (module docstring).
        form: "auto", "kernel" or "outputs": the form ``forward`` runs with the input fingerprint.
        dilations: per candidate, its dilation per axis (K tuples of len dim; planned receptive fields, issue 19:
            ``planning/candidate_plan.py``); candidate j then has receptive field (k - 1)·d_j + 1 per axis (a
            k-tap kernel at dilation d_j; a dense kernel of that size for ``dense``). None: d_j = j on every axis
            with k > 1 (receptive fields 3, 5, 7). Axes planned with kernel 1 must have dilation 1.
    Buffers:
        temperature: τ (scalar, persistent, default 1); set in place by the trainer's annealing.
    """

    def __init__(
        self,
        conv_op: Type[_ConvNd],
        in_channels: int,
        out_channels: int,
        kernel_size: Union[int, Sequence[int]] = 3,
        num_candidates: int = 3,
        realization: str = "dilated",
        reduction: int = 4,
        bias: bool = True,
        eps: float = 1e-5,
        fingerprint: str = "responses",
        init: str = "he",
        form: str = "auto",
        dilations: Optional[Sequence[Sequence[int]]] = None,
    ) -> None:
        super().__init__()
        check_options(realization, fingerprint, init, form)
        self.dim = conv_dim(conv_op)
        self.kernel_size = as_per_axis(kernel_size, self.dim, "kernel_size")
        if any(k < 1 or k % 2 == 0 for k in self.kernel_size):
            raise ValueError(f"SACM needs odd kernel sizes per axis (1 or 3 in nnU-Net plans), got "
                             f"{list(self.kernel_size)}.")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.num_candidates = int(num_candidates)
        self.dilations = check_dilations(dilations, self.kernel_size, self.num_candidates)
        self.realization = realization
        if realization == "split" and self.in_channels < self.num_candidates:
            raise ValueError(f"SACM realization 'split' gives each of the K={self.num_candidates} candidates its own "
                             f"group of input channels, but there are only {self.in_channels}: use K <= C_in or "
                             f"another realization ('dilated').")
        #: per candidate, its slice of the input channels (all of them unless ``split``)
        self.input_groups = split_channels(self.in_channels, self.num_candidates, realization == "split")
        self.eps = float(eps)
        self.fingerprint_kind, self.init = fingerprint, init
        self.form = form if form != "auto" else ("kernel" if realization in ("separable", "split", "bottleneck")
                                                 else "outputs")
        if fingerprint == "responses":
            self.form = "outputs"
        self.observe = False
        self.last_pi: Optional[torch.Tensor] = None

        K = self.num_candidates
        depthwise = realization == "separable"
        c_resp = self.in_channels if depthwise else self.out_channels  # C_k: channels of the candidate responses
        c_w_in = [1 if depthwise else g.stop - g.start for g in self.input_groups]
        #: C_r, the reduced width of the ``bottleneck`` realization's wider candidates (None otherwise)
        self.bottleneck_channels = bottleneck_width(self.in_channels) if realization == "bottleneck" else None
        if self.bottleneck_channels is not None:
            c_w_in = [self.in_channels] + [self.bottleneck_channels] * (K - 1)
        if realization == "dense":
            shapes = [self._candidate_rf(j) for j in range(1, K + 1)]
        else:
            shapes = [self.kernel_size] * K
        n_tensors = 1 if realization == "shared" else K
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.empty(c_resp, c_w_in[j], *shapes[j])) for j in range(n_tensors)])
        self.pointwise = conv_op(self.in_channels, self.out_channels, 1, bias=bias) if depthwise else None
        #: R, the ``bottleneck`` realization's 1×1 reduction (C_r, C_in, 1, ...), shared by the wider candidates
        self.reduce = (nn.Parameter(torch.empty(self.bottleneck_channels, self.in_channels, *([1] * self.dim)))
                       if self.bottleneck_channels is not None else None)
        self.bias = nn.Parameter(torch.zeros(self.out_channels)) if (bias and not depthwise) else None

        if fingerprint == "input":
            n_features, c_gate = input_fingerprint_size(K, self.in_channels), self.in_channels
        else:
            n_features, c_gate = 2 * K * c_resp, c_resp
        hidden = max(c_gate // reduction, 8)
        self.gate = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, K))
        self.register_buffer("temperature", torch.ones(()), persistent=True)
        self.reset_parameters()

    # ------------------------------------------------------------------ geometry of the candidates
    def _candidate_rf(self, j: int) -> Tuple[int, ...]:
        """Receptive field per axis of candidate j (1-based): (k - 1)·d_j + 1."""
        return tuple((k - 1) * d + 1 for k, d in zip(self.kernel_size, self.dilations[j - 1]))

    @property
    def candidate_receptive_fields(self) -> List[Tuple[int, ...]]:
        """Per candidate, its receptive field per axis ((3, 3), (5, 5), (7, 7) for a 2D kernel 3)."""
        return [self._candidate_rf(j) for j in range(1, self.num_candidates + 1)]

    @property
    def receptive_fields(self) -> List[int]:
        """Receptive field of each candidate on its widest axis (3, 5, 7 for K = 3, kernel 3, default dilations)."""
        return [max(self._candidate_rf(j)) for j in range(1, self.num_candidates + 1)]

    def _dilation(self, j: int) -> Tuple[int, ...]:
        if self.realization == "dense":
            return (1,) * self.dim
        return self.dilations[j - 1]

    def _padding(self, j: int) -> Tuple[int, ...]:
        return tuple((r - 1) // 2 for r in self._candidate_rf(j))

    def _weight(self, j: int) -> torch.Tensor:
        """Candidate j's kernel on x, (C_k, C_w_in, *k); for ``bottleneck`` j ≥ 2 the composition W_j R (C_out, C_in,
        *k), for the kernel form and tests (the forward passes never build it)."""
        if self.realization == "shared":
            return self.weights[0]
        if self.reduce is not None and j > 1:
            composed = torch.tensordot(self.weights[j - 1], self.reduce.flatten(1), dims=([1], [0]))
            return composed.movedim(-1, 1)
        return self.weights[j - 1]

    def _reduced(self, x: torch.Tensor) -> torch.Tensor:
        """z = R x, (B, C_r, *S): the ``bottleneck`` realization's reduced input."""
        return pointwise_conv(x.contiguous(), self.reduce)

    def reset_parameters(self) -> None:
        """He init of the candidates as nnU-Net's ``InitWeights_He(1e-2)`` does for its convs; with ``init="static"``
        the candidates beyond the first start at zero, so y = π_1 · conv_1(x) (+ b): the static conv scaled per sample,
        a scale the norm after SACM removes. The gate keeps its default init (a zero gate would have to wait for the
        zero candidates to grow before it gets a gradient: two zeros in a product)."""
        for j, w in enumerate(self.weights):
            if self.init == "static" and j > 0:
                nn.init.zeros_(w)
            else:
                nn.init.kaiming_normal_(w, a=1e-2)
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        if self.reduce is not None:
            nn.init.kaiming_normal_(self.reduce, a=1e-2)
        if self.pointwise is not None:
            nn.init.kaiming_normal_(self.pointwise.weight, a=1e-2)
            if self.pointwise.bias is not None:
                nn.init.zeros_(self.pointwise.bias)


    # ------------------------------------------------------------------ the math
    def candidate_responses(self, x: torch.Tensor) -> List[torch.Tensor]:
        """r_k = conv_k(x) for k = 1..K, each (B, C_k, *S), no bias."""
        depthwise = self.realization == "separable"
        groups = self.in_channels if depthwise else 1
        if depthwise and x.device.type == "cpu":
            x = channels_last(x)  # once for the K depthwise calls; responses stay channels-last (fast_conv)
        split = self.realization == "split"
        if self.reduce is not None:
            z = self._reduced(x)
            return [fast_conv(x if j == 1 else z, self.weights[j - 1], None, self._padding(j), self._dilation(j))
                    for j in range(1, self.num_candidates + 1)]
        return [fast_conv(x[:, self.input_groups[j - 1]] if split else x, self._weight(j), None, self._padding(j),
                          self._dilation(j), groups, keep_channels_last=depthwise)
                for j in range(1, self.num_candidates + 1)]

    def fingerprint(self, responses: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-channel spatial mean and population std of each response: (B, 2·K·C_k), float32 (or wider).

        ``fused_ops.spatial_mean_std``: the numbers of ``torch.var_mean``, fewer passes over r in forward and
        backward."""
        stats = []
        for r in responses:
            stats += list(spatial_mean_std(r, self.eps))
        return torch.cat(stats, dim=1)

    def input_fingerprint(self, x: torch.Tensor) -> torch.Tensor:
        """[μ, σ, std(P_k x) / σ]_k of x per channel: (B, (K + 2)·C_in), float32 (``sacm_fingerprint``)."""
        return input_fingerprint(x, self.num_candidates, [k > 1 for k in self.kernel_size], self.eps)

    def attention(self, responses: Sequence[torch.Tensor]) -> torch.Tensor:
        """π = softmax(MLP(fingerprint of the responses) / τ) over the K candidates: (B, K), float32."""
        return self.gate_attention(self.fingerprint(responses))

    def gate_attention(self, fp: torch.Tensor) -> torch.Tensor:
        """π = softmax(MLP(fp) / τ): (B, K), float32, rows sum to 1."""
        with torch.autocast(device_type=fp.device.type, enabled=False):
            w_dtype = self.gate[0].weight.dtype
            logits = self.gate(fp if fp.dtype == w_dtype else fp.to(w_dtype))
            pi = torch.softmax(logits / self.temperature, dim=1)
        if self.observe:
            self.last_pi = pi.detach()
        return pi

    def _finish(self, mixed: torch.Tensor) -> torch.Tensor:
        if self.pointwise is not None:  # mixed may be channels-last (depthwise on CPU)
            return pointwise_conv(mixed.contiguous(), self.pointwise.weight, self.pointwise.bias)
        if self.bias is not None:
            mixed = mixed + self.bias.to(mixed.dtype).view(1, -1, *([1] * self.dim))
        return mixed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """y = Σ_k π_k · conv_k(x) + b in the form ``self.form``. x: (B, C_in, *S) -> (B, C_out, *S)."""
        if x.dim() != self.dim + 2:
            raise ValueError(f"SACM is {self.dim}D and expects a (B, C, {', '.join('S' * self.dim)}) tensor, "
                             f"got shape {tuple(x.shape)}.")
        if self.form == "kernel":
            return self.forward_kernel_form(x)
        return self.forward_outputs_form(x)

    def forward_outputs_form(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs form: y = Σ_k π_k · conv_k(x) + b, the K candidate responses mixed per sample."""
        if self.fingerprint_kind == "input":
            pi = self.gate_attention(self.input_fingerprint(x))
            responses = self.candidate_responses(x)
        else:
            responses = self.candidate_responses(x)
            pi = self.attention(responses)
        return self._finish(mix_candidates(pi, responses))

    def pi(self, x: torch.Tensor) -> torch.Tensor:
        """π for input x (B, C_in, *S): (B, K), from the fingerprint this SACM uses."""
        if self.fingerprint_kind == "input":
            return self.gate_attention(self.input_fingerprint(x))
        return self.attention(self.candidate_responses(x))

    # ------------------------------------------------------------------ the kernel form (for tests and analysis)
    def embedded_kernels(self) -> torch.Tensor:
        """Ŵ_k: every candidate placed in the largest grid, (K, C_k, C_w_in, *R), R = rf of the last candidate.

        Zero-padded for ``dense``, zero-inserted at dilation k for ``dilated``/``shared``/``separable``. Without
        autograd (prediction) the result is kept until a candidate's weights change (their version counters).
        """
        if torch.is_grad_enabled():
            return self._embed_kernels()
        tensors = [*self.weights, *([self.reduce] if self.reduce is not None else [])]
        key = tuple((id(w), w._version) for w in tensors)
        cached = getattr(self, "_embedded_cache", None)
        if cached is None or cached[0] != key:
            cached = (key, self._embed_kernels())
            self._embedded_cache = cached
        return cached[1]

    def _embed_kernels(self) -> torch.Tensor:
        K = self.num_candidates
        big = tuple(max(rf) for rf in zip(*self.candidate_receptive_fields))
        w0 = self._weight(1)
        c_w_in = w0.shape[1] if self.realization != "split" else self.in_channels
        out = w0.new_zeros((K, w0.shape[0], c_w_in) + big)
        for j in range(1, K + 1):
            w = self._weight(j)
            dil, size = self._dilation(j), w.shape[2:]
            index = [slice(None), self.input_groups[j - 1] if self.realization == "split" else slice(None)]
            for ax in range(self.dim):
                extent = (size[ax] - 1) * dil[ax] + 1
                start = (big[ax] - extent) // 2
                index.append(slice(start, start + extent, dil[ax]))
            out[(j - 1, *index)] = w
        return out

    def forward_kernel_form(self, x: torch.Tensor) -> torch.Tensor:
        """Kernel form: y_b = conv(x_b, Σ_k π_bk · Ŵ_k) + b, one convolution with a per-sample kernel (grouped over
        the batch, ``per_sample_conv``). With the responses fingerprint π still needs the candidates' responses
        (tests only)."""
        pi = self.pi(x)
        if self.realization == "split":
            return self._split_kernel_form(x, pi)
        if self.realization == "bottleneck":
            return self._bottleneck_kernel_form(x, pi)
        training = torch.is_grad_enabled() and any(t.requires_grad for t in (x, self.weights[0]))
        if self.realization == "separable" and (training or x.shape[0] > 1):
            # depthwise dilated candidates: kernel gradients at their taps only (per_sample_conv)
            dilations = [self._dilation(j) for j in range(1, self.num_candidates + 1)]
            # depthwise mixture and pointwise in one function that keeps only x (separable_mixture.py)
            return separable_mixture(x, pi, list(self.weights), dilations, self.pointwise.weight, self.pointwise.bias)
        w_hat = self.embedded_kernels()  # (K, C_k, C_w_in, *R)
        w_b = mix_kernels(pi, w_hat, torch.promote_types(x.dtype, w_hat.dtype))  # (B, C_k, C_w_in, *R)
        pad = tuple((r - 1) // 2 for r in w_hat.shape[3:])
        groups = self.in_channels if self.realization == "separable" else 1
        return self._finish(per_sample_conv(x.contiguous(), w_b, pad, groups))

    def _split_kernel_form(self, x: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
        """``split``'s kernel form: the per-sample kernel [π_1·W_1 | ... | π_K·W_K] (input groups side by side) applied
        without building it, y = Σ_j conv_{d_j}(π_j · x_j, W_j) + b: one scaling pass over x and K convolutions whose
        FLOPs add up to one static conv's. x: (B, C_in, *S), π: (B, K) -> (B, C_out, *S)."""
        scale = pi.to(x.dtype).view(pi.shape[0], self.num_candidates, *([1] * (self.dim + 1)))
        y = None
        for j in range(1, self.num_candidates + 1):
            xj = x[:, self.input_groups[j - 1]] * scale[:, j - 1]  # (B, C_j, *S), contiguous
            bias = self.bias.to(x.dtype) if (j == 1 and self.bias is not None) else None
            r = fast_conv(xj, self._weight(j), bias, self._padding(j), self._dilation(j), 1)
            y = r if y is None else y.add_(r)
        return y

    def _bottleneck_kernel_form(self, x: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
        """``bottleneck``'s kernel form, y = W_1 *_{d_1} (π_1 · x) + Σ_{j≥2} W_j *_{d_j} (π_j · R x) + b: the
        per-sample mixture as per-sample input scales (π_j is a scalar per sample, so π_j · (W_j * z) = W_j * (π_j·z)),
        no K responses kept. x: (B, C_in, *S), π: (B, K) -> (B, C_out, *S)."""
        scale = pi.to(x.dtype).view(pi.shape[0], self.num_candidates, *([1] * (self.dim + 1)))
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        y = fast_conv(x * scale[:, 0], self.weights[0], bias, self._padding(1), self._dilation(1))
        z = self._reduced(x)
        for j in range(2, self.num_candidates + 1):
            y = y.add_(fast_conv(z * scale[:, j - 1], self.weights[j - 1], None, self._padding(j), self._dilation(j)))
        return y

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> int:
        """Elements of the maps SACM keeps for backward: in the outputs form the K responses and the mixed output,
        in the kernel form the one conv output (x is its input's), plus the pointwise output (nnU-Net's unit)."""
        c_k = self.in_channels if self.realization == "separable" else self.out_channels
        n = math.prod(int(s) for s in input_size)
        extra = self.out_channels * n if self.pointwise is not None else 0
        kept = 1 if self.form == "kernel" else self.num_candidates + 1
        if self.realization == "split" and self.form == "kernel":  # the scaled input groups and the output
            extra += self.in_channels * n
        if self.bottleneck_channels is not None:  # z, and in the kernel form the scaled x and scaled z's
            c_r = self.bottleneck_channels
            extra += c_r * n + ((self.in_channels + (self.num_candidates - 1) * c_r) * n if self.form == "kernel"
                                else 0)
        return int(kept * c_k * n + extra)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={list(self.kernel_size)}, "
                f"K={self.num_candidates}, realization={self.realization}, rf={self.candidate_receptive_fields}, "
                f"fingerprint={self.fingerprint_kind}, form={self.form}, init={self.init}")
