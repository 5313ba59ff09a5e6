"""Mixed precision on real Task04_Hippocampus patches: nnU-Net trains under autocast (float16 + GradScaler on CUDA);
on CPU the same code path runs with bfloat16 (and float16 where the CPU kernels exist).

A worker process (this file run as a script, with the e2e workspace's ``nnUNet_*`` environment: ``nnunetv2.paths``
reads it at import time) builds nnU-Net's own ``nnUNetTrainerMSA2`` on the ``2d`` small-batch configuration, takes
batches from nnU-Net's data loaders (augmentation, deep-supervision targets) and runs nnU-Net's ``train_step`` with
the autocast turned on for CPU: zero_grad, autocast(forward + nnU-Net's DC+CE deep-supervision loss), backward,
``clip_grad_norm_(12)``, SGD step (with a ``GradScaler`` for float16, as nnU-Net does on CUDA), and the SACM
temperature schedule of ``nnUNetTrainerMSA2.train_step``.

The tests would catch:

- a loss, gradient (norm) or parameter of the real network going inf/NaN under bfloat16 autocast in a few hundred
  steps (e.g. the MASAG product X''·G'' or SACM's fingerprint overflowing or losing precision in low precision),
  or the network not training at all under autocast (loss not falling);
- any gate softmax (SACM's π, MASAG's spatial selection), SACM fingerprint statistic (spatial mean / variance /
  sqrt), SACM gate MLP, or MASAG sigmoid that autocast runs in bfloat16/float16 instead of float32, in forward,
  in the recomputation (activation checkpointing) during backward, or in their backward ops; and the probe
  silently recording nothing (every SACM and MASAG of the network must be seen);
- float16 autocast with nnU-Net's GradScaler diverging or skipping most steps.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import traceback
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

pytestmark = pytest.mark.e2e

BF16_STEPS = 40          # enough for the τ schedule (10 %) and a clear fall of the loss (0.78 -> 0.23 at step 40 on AMD EPYC; ~1-4 s per step on 2 cores)
FP16_STEPS = 8           # CPU float16 convolutions are PyTorch's slow reference kernels (~1.3 s per batch-2 step)
FP16_BATCH_SIZE = 2
SEED = 0
WORKER_TIMEOUT_S = 1200
FLOAT32 = "torch.float32"

# aten ops (overload packet names) the float32 checks look at
SOFTMAX_OPS = {"_softmax", "softmax", "_softmax_backward_data"}
SIGMOID_OPS = {"sigmoid", "sigmoid_backward"}
STAT_OPS = {"mean", "var", "std", "var_mean", "std_mean", "sqrt", "pow", "sum"}   # SACM's fingerprint (fused_ops)
GATE_MLP_OPS = {"addmm", "mm", "linear"}                                            # SACM's gate (nn.Linear)
STATS_BACKWARD_OPS = {"add", "sub", "mul", "div", "addcmul"}                        # fused_ops backward


# ================================================================================================ worker (subprocess)
class _OpRecorder:
    """Logs (scope, phase, aten op, input dtypes, output dtypes) of the ops run inside labelled scopes, plus every
    softmax/sigmoid (and their backward) run anywhere during the network's backward pass."""

    def __init__(self) -> None:
        self.scopes: List[str] = []
        self.phase = "forward"
        self.records: Dict[Tuple[str, str, str, Tuple[str, ...], Tuple[str, ...]], int] = defaultdict(int)

    def mode(self):
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode

        recorder = self

        from torch.utils._pytree import tree_leaves

        def float_dtypes(values) -> Tuple[str, ...]:
            flat = tree_leaves(values)
            return tuple(str(v.dtype) for v in flat if isinstance(v, torch.Tensor) and v.is_floating_point())

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                name = func.overloadpacket.__name__
                scope = recorder.scopes[-1] if recorder.scopes else None
                if scope is None and recorder.phase == "backward" and name in SOFTMAX_OPS | SIGMOID_OPS:
                    scope = "network-backward"
                if scope is not None:
                    key = (scope, recorder.phase, name, float_dtypes((args, kwargs)), float_dtypes(out))
                    recorder.records[key] += 1
                return out

        return Mode()

    @contextmanager
    def scope(self, label: str) -> Iterator[None]:
        self.scopes.append(label)
        try:
            yield
        finally:
            self.scopes.pop()

    def wrap(self, label: str, fn: Callable) -> Callable:
        def wrapped(*args, **kwargs):
            with self.scope(label):
                return fn(*args, **kwargs)
        return wrapped

    def as_json(self) -> List[dict]:
        return [dict(scope=s, phase=p, op=o, inputs=list(i), outputs=list(r), count=c)
                for (s, p, o, i, r), c in sorted(self.records.items())]


@contextmanager
def _instrumented(network, recorder: _OpRecorder) -> Iterator[Dict[str, List[str]]]:
    """Scope labels on every SACM (module hooks: they also fire when a recomputed block reruns it in backward), on
    MASAG's three parts (methods: recompute calls them directly) and on the backward of SACM's fused statistics.
    Yields the qualified names of the instrumented SACM and MASAG modules."""
    from nnunet_msa.blocks import fused_ops
    from nnunet_msa.blocks.masag import MASAG
    from nnunet_msa.blocks.observe import unwrap
    from nnunet_msa.blocks.sacm import SACM

    def enter(label: str) -> Callable:
        def pre_hook(module, inputs) -> None:
            recorder.scopes.append(label)
        return pre_hook

    def leave(module, inputs, output) -> None:  # also when forward raises (checkpoint's early stop)
        recorder.scopes.pop()

    handles, patched = [], []
    names: Dict[str, List[str]] = {"SACM": [], "MASAG": []}
    for qual, m in unwrap(network).named_modules():
        if isinstance(m, SACM):
            names["SACM"].append(qual)
            handles.append(m.register_forward_pre_hook(enter(f"SACM:{qual}")))
            handles.append(m.register_forward_hook(leave, always_call=True))
        elif isinstance(m, MASAG):
            names["MASAG"].append(qual)
            for part in ("context", "attention_map", "_output"):
                setattr(m, part, recorder.wrap(f"MASAG.{part}:{qual}", getattr(m, part)))
                patched.append((m, part))
    stats_backward = fused_ops._SpatialMeanStd.backward
    fused_ops._SpatialMeanStd.backward = staticmethod(recorder.wrap("SACM.stats_backward", stats_backward))
    try:
        yield names
    finally:
        fused_ops._SpatialMeanStd.backward = staticmethod(stats_backward)
        for m, part in patched:
            delattr(m, part)
        for h in handles:
            h.remove()


def _make_trainer(args: dict):
    import torch
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunet_msa.training import nnUNetTrainerMSA2

    pre = Path(args["preprocessed_dir"])
    plans = load_json(str(pre / "nnUNetPlans.json"))
    plans["continue_training"] = False  # what nnunetv2.run.run_training.get_trainer_from_args adds
    trainer = nnUNetTrainerMSA2(plans=plans, configuration=args["config"], fold=0,
                                dataset_json=load_json(str(pre / "dataset.json")), device=torch.device("cpu"))
    trainer.initialize()
    trainer.set_deep_supervision_enabled(True)
    return trainer


def _batch_to_device(trainer, batch: dict):
    data = batch["data"].to(trainer.device, non_blocking=True)
    target = batch["target"]
    target = ([t.to(trainer.device, non_blocking=True) for t in target] if isinstance(target, list)
              else target.to(trainer.device, non_blocking=True))
    return data, target


def _set_temperature(trainer, iteration: int) -> float:
    """τ as ``nnUNetTrainerMSA2.train_step`` sets it (one epoch of ``num_iterations_per_epoch`` steps)."""
    from nnunet_msa.training.temperature import annealed_temperature, set_sacm_temperature

    tau = (annealed_temperature(iteration, trainer.num_epochs, trainer.num_iterations_per_epoch, trainer.tau0,
                                trainer.anneal_fraction) if trainer.anneal_temperature else 1.0)
    set_sacm_temperature(trainer.network, tau)
    return tau


def _params_finite(network) -> bool:
    import torch
    return all(bool(torch.isfinite(t).all()) for t in list(network.parameters()) + list(network.buffers())
               if t.is_floating_point())


def _train(trainer, dl, dtype, steps: int, scaler=None) -> dict:
    """nnU-Net's ``train_step`` with autocast on CPU, ``steps`` times; per-step loss, grad norm, τ, finiteness."""
    import torch

    trainer.num_epochs, trainer.num_iterations_per_epoch = 1, steps
    trainer.network.train()
    params = list(trainer.network.parameters())
    out: Dict[str, list] = defaultdict(list)
    t0 = time.time()
    for it in range(steps):
        out["tau"].append(_set_temperature(trainer, it))
        data, target = _batch_to_device(trainer, next(dl))
        trainer.optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=dtype):
            output = trainer.network(data)
            loss = trainer.loss(output, target)
        if scaler is not None:
            scale_before = float(scaler.get_scale())
            scaler.scale(loss).backward()
            scaler.unscale_(trainer.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(params, 12)
            scaler.step(trainer.optimizer)
            scaler.update()
            out["skipped"].append(float(scaler.get_scale()) < scale_before)  # scaler found inf/NaN grads
            out["scale"].append(scale_before)
        else:
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(params, 12)
            trainer.optimizer.step()
        out["loss"].append(float(loss.detach()))
        out["grad_norm"].append(float(norm))
        out["output_dtype"].append(str(output[0].dtype))
        out["params_finite"].append(_params_finite(trainer.network))
    out["seconds"] = time.time() - t0
    return dict(out)


def _probe(trainer, dl, dtype, tau: float) -> dict:
    """One forward + backward of the real network under autocast, logging the dtypes of the ops inside SACM and
    MASAG. Backward runs in two parts, loss -> network outputs unrecorded, network outputs -> parameters recorded,
    so that the only softmax/sigmoid ops of the recorded backward are the network's."""
    import torch
    from nnunet_msa.blocks.observe import observe_attention
    from nnunet_msa.training.temperature import set_sacm_temperature

    trainer.network.train()
    set_sacm_temperature(trainer.network, tau)
    data, target = _batch_to_device(trainer, next(dl))
    trainer.optimizer.zero_grad(set_to_none=True)
    recorder = _OpRecorder()
    observed: Dict[str, list] = {"pi_dtype": [], "pi_row_sum_err": [], "attention_dtype": []}
    with _instrumented(trainer.network, recorder) as names, observe_attention(trainer.network) as modules:
        with recorder.mode():
            with torch.autocast("cpu", dtype=dtype):
                output = trainer.network(data)
        with torch.autocast("cpu", dtype=dtype):
            loss = trainer.loss(output, target)
        grads = torch.autograd.grad(loss, output, allow_unused=True)
        pairs = [(o, g) for o, g in zip(output, grads) if g is not None]
        recorder.phase = "backward"
        with recorder.mode():
            torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])
        for m in modules:
            if getattr(m, "last_pi", None) is not None:
                observed["pi_dtype"].append(str(m.last_pi.dtype))
                observed["pi_row_sum_err"].append(float((m.last_pi.double().sum(1) - 1).abs().max()))
            if getattr(m, "last_attention", None) is not None:
                observed["attention_dtype"].append(str(m.last_attention.dtype))
    grad_finite = all(bool(torch.isfinite(p.grad).all()) for p in trainer.network.parameters() if p.grad is not None)
    trainer.optimizer.zero_grad(set_to_none=True)
    from nnunet_msa.blocks.observe import unwrap
    recompute = getattr(unwrap(trainer.network), "recompute", False)  # MSA2UNet's mode: True, "gates", "blocks" or False
    return dict(records=recorder.as_json(), modules=names, loss=float(loss.detach()), grad_finite=grad_finite,
                output_dtype=str(output[0].dtype), recompute=recompute, **observed)


def _cpu_seconds() -> float:
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _part(results: dict, name: str, fn: Callable[[], Any]) -> None:
    t0, c0 = time.time(), _cpu_seconds()
    try:
        results[name] = fn()
    except Exception:  # reported to the test, which fails (or skips) with the traceback
        results[name] = {"error": traceback.format_exc()}
    results.setdefault("seconds", {})[name] = (round(time.time() - t0, 1), round(_cpu_seconds() - c0, 1))


def worker_main(args: dict) -> None:
    import random

    import numpy as np
    import torch

    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    results: dict = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    trainers: dict = {}

    def setup() -> dict:
        trainers["bf16"] = _make_trainer(args)
        trainers["dl_bf16"] = trainers["bf16"].get_dataloaders()[0]  # nnUNet_n_proc_DA=0: SingleThreadedAugmenter
        return {"batch_shape": list(next(trainers["dl_bf16"])["data"].shape)}

    _part(results, "setup", setup)
    if "error" in results["setup"]:
        raise RuntimeError(results["setup"]["error"])
    trainer, dl_train = trainers["bf16"], trainers["dl_bf16"]
    bf16 = torch.bfloat16
    _part(results, "probe_bf16", lambda: _probe(trainer, dl_train, bf16, trainer.tau0))
    _part(results, "train_bf16", lambda: _train(trainer, dl_train, bf16, args["bf16_steps"]))
    _part(results, "probe_bf16_trained", lambda: _probe(trainer, dl_train, bf16, 1.0))  # trained weights

    if args["fp16_steps"]:
        def fp16() -> dict:
            if not hasattr(torch.amp, "GradScaler"):
                return {"unsupported": f"torch {torch.__version__} has no torch.amp.GradScaler('cpu')"}
            torch.manual_seed(SEED)
            fresh = trainers["fp16"] = _make_trainer(args)  # from scratch, as nnU-Net's CUDA training starts
            fresh.batch_size = args["fp16_batch_size"]  # CPU float16 convs are the slow reference kernels
            trainers["dl_fp16"] = fresh.get_dataloaders()[0]
            return _train(fresh, trainers["dl_fp16"], torch.float16, args["fp16_steps"],
                          torch.amp.GradScaler("cpu"))

        _part(results, "train_fp16", fp16)
        if "fp16" in trainers:
            _part(results, "probe_fp16",
                  lambda: _probe(trainers["fp16"], trainers["dl_fp16"], torch.float16, 1.0))
    Path(args["out"]).write_text(json.dumps(results))


# ================================================================================================ tests (pytest)
def _run_worker(hippocampus, e2e_workspace, out_dir: Path, bf16_steps: int, fp16_steps: int) -> dict:
    env = dict(e2e_workspace.env)
    env.update(nnUNet_n_proc_DA="0", OMP_WAIT_POLICY="PASSIVE", PYTHONUNBUFFERED="1")
    out, log = out_dir / "mixed_precision.json", out_dir / "mixed_precision_worker.log"
    args = dict(preprocessed_dir=str(hippocampus.preprocessed_dir), config=hippocampus.configs["2d"], out=str(out),
                bf16_steps=bf16_steps, fp16_steps=fp16_steps, fp16_batch_size=FP16_BATCH_SIZE)
    t0 = time.time()
    with open(log, "w") as f:
        proc = subprocess.run([sys.executable, __file__, json.dumps(args)], env=env, stdout=f,
                              stderr=subprocess.STDOUT, timeout=WORKER_TIMEOUT_S, cwd=str(out_dir))
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
    assert proc.returncode == 0 and out.is_file(), f"mixed-precision worker failed ({proc.returncode}):\n{tail}"
    res = json.loads(out.read_text())
    res["wall_seconds"] = time.time() - t0
    return res


@pytest.fixture(scope="module")
def mp_run(hippocampus, e2e_workspace, tmp_path_factory) -> dict:
    res = _run_worker(hippocampus, e2e_workspace, tmp_path_factory.mktemp("mixed_precision"), BF16_STEPS,
                      FP16_STEPS)
    print(f"\nmixed-precision worker: {res['wall_seconds']:.1f} s wall; parts (wall s, CPU s): "
          f"{json.dumps(res['seconds'])}")
    return res


def _part_of(res: dict, name: str) -> dict:
    part = res[name]
    assert "error" not in part, f"{name} raised in the worker:\n{part['error']}"
    return part


def _mean(values: List[float]) -> float:
    return sum(values) / len(values)


def _assert_training_finite(run: dict, label: str, skipped_ok: Optional[List[bool]] = None) -> None:
    steps = len(run["loss"])
    bad_loss = [i for i, v in enumerate(run["loss"]) if not math.isfinite(v)]
    taus = [run["tau"][i] for i in bad_loss[:3]]
    assert not bad_loss, f"{label}: non-finite loss at steps {bad_loss[:10]} (τ {taus})"
    skipped = skipped_ok or [False] * steps
    bad_norm = [i for i, v in enumerate(run["grad_norm"]) if not math.isfinite(v) and not skipped[i]]
    assert not bad_norm, f"{label}: non-finite gradient norm at steps {bad_norm[:10]}"
    bad_params = [i for i, ok in enumerate(run["params_finite"]) if not ok]
    assert not bad_params, f"{label}: non-finite parameters/buffers after steps {bad_params[:10]}"


def test_bf16_autocast_training_stays_finite_and_learns(mp_run: dict) -> None:
    """BF16_STEPS of nnU-Net's train_step under bfloat16 autocast on real patches: every loss, gradient norm and
    parameter finite, τ annealed 30 -> 1 on the way, and the loss falls (not merely stays finite)."""
    run = _part_of(mp_run, "train_bf16")
    assert len(run["loss"]) == BF16_STEPS
    assert set(run["output_dtype"]) == {"torch.bfloat16"}, "autocast did not reach the network's head"
    assert run["tau"][0] == pytest.approx(30.0) and run["tau"][-1] == 1.0, "the τ schedule was not exercised"
    _assert_training_finite(run, "bfloat16")
    first, last = _mean(run["loss"][:10]), _mean(run["loss"][-10:])
    assert last < first - 0.1, f"bfloat16 training did not lower the loss: first 10 {first:.3f}, last 10 {last:.3f}"


def _check_float32(probe: dict, label: str) -> None:
    """Every softmax/sigmoid/statistic/gate-MLP op seen inside SACM and MASAG, and every softmax/sigmoid in the
    network's backward, had float32 inputs and outputs; every SACM and MASAG was seen doing them."""
    recs = probe["records"]
    assert recs, f"{label}: the probe recorded no op at all"

    def is_f32(r: dict) -> bool:
        if r["scope"] == "SACM.stats_backward":  # type-promoting arithmetic: computed in its output dtype
            return bool(r["outputs"]) and all(d == FLOAT32 for d in r["outputs"])
        return bool(r["inputs"]) and all(d == FLOAT32 for d in r["inputs"] + r["outputs"])

    def kind(r: dict) -> str:
        return r["scope"].split(":")[0]

    checked = {  # (scope kind, ops) that must be float32
        "SACM softmax": lambda r: kind(r) == "SACM" and r["op"] in SOFTMAX_OPS,
        "SACM statistics": lambda r: kind(r) == "SACM" and r["op"] in STAT_OPS,
        # the hand-written backward of the statistics: its arithmetic in float32 (r enters in the autocast dtype
        # and is promoted by addcmul; the result is cast back to r's dtype by a final copy)
        "SACM statistics backward": lambda r: kind(r) == "SACM.stats_backward" and r["op"] in STATS_BACKWARD_OPS,
        "SACM gate MLP": lambda r: kind(r) == "SACM" and r["op"] in GATE_MLP_OPS,
        # eq. 2's softmax over the two selection weights, computed as σ(L_1 - L_2) (masag_interaction)
        "MASAG selection": lambda r: kind(r) == "MASAG.attention_map" and r["op"] in SOFTMAX_OPS | SIGMOID_OPS,
        # the whole attention path, eq. 2-6 up to the sigmoid (convs, norm, products), after its float32 casts
        "MASAG attention path": lambda r: kind(r) == "MASAG.attention_map" and r["op"] != "_to_copy" and r["inputs"],
        "MASAG sigmoid": lambda r: kind(r).startswith("MASAG") and r["op"] in SIGMOID_OPS,
        "network backward softmax/sigmoid": lambda r: kind(r) == "network-backward",
    }
    not_f32 = [r for r in recs if any(f(r) for f in checked.values()) and not is_f32(r)]
    assert not not_f32, f"{label}: ops not in float32:\n" + "\n".join(map(json.dumps, not_f32))
    for what, f in checked.items():
        assert any(f(r) for r in recs), f"{label}: no {what} op recorded"

    # coverage: every SACM computed π and statistics, every MASAG its selection and recalibration sigmoids, in forward
    for qual in probe["modules"]["SACM"]:
        ops = {r["op"] for r in recs if r["scope"] == f"SACM:{qual}" and r["phase"] == "forward"}
        assert {"_softmax", "mean", "sqrt"} <= ops and ops & GATE_MLP_OPS, \
            f"{label}: SACM {qual} recorded only {sorted(ops)}"
    for qual in probe["modules"]["MASAG"]:
        ops = {r["op"] for r in recs if r["scope"] == f"MASAG.attention_map:{qual}" and r["phase"] == "forward"}
        assert "sigmoid" in ops, f"{label}: MASAG {qual} recorded only {sorted(ops)}"
    assert probe["modules"]["SACM"] and probe["modules"]["MASAG"], f"{label}: network without SACM or MASAG"
    # backward: the softmax/sigmoid gradients ran (in float32, checked above)
    bwd = {r["op"] for r in recs if r["phase"] == "backward"}
    assert {"_softmax_backward_data", "sigmoid_backward"} <= bwd, f"{label}: backward recorded only {sorted(bwd)}"
    if probe["recompute"]:  # the recomputed forward of the recomputed modules in backward was seen (checked above)
        rerun = {kind(r) for r in recs if r["phase"] == "backward" and r["op"] in SOFTMAX_OPS | SIGMOID_OPS}
        expected = {"MASAG.attention_map"} | ({"SACM"} if probe["recompute"] is True else set())
        assert expected <= rerun, f"{label}: recomputation not seen, only in {sorted(rerun)}"
    # what the modules hand on
    assert probe["pi_dtype"] and set(probe["pi_dtype"]) == {FLOAT32}, f"{label}: SACM π dtypes {probe['pi_dtype']}"
    assert max(probe["pi_row_sum_err"]) < 1e-5
    assert probe["attention_dtype"] and set(probe["attention_dtype"]) == {FLOAT32}
    assert math.isfinite(probe["loss"]) and probe["grad_finite"], f"{label}: non-finite loss or gradient"


@pytest.mark.parametrize("probe", ["probe_bf16", "probe_bf16_trained"])
def test_gates_statistics_and_sigmoids_run_in_float32_under_bf16_autocast(mp_run: dict, probe: str) -> None:
    """The whole real network (recomputed blocks, fused statistics) under bfloat16 autocast, at initialisation
    (τ = 30) and after training (τ = 1): softmaxes, SACM statistics, gate MLP and sigmoids in float32."""
    p = _part_of(mp_run, probe)
    assert p["output_dtype"] == "torch.bfloat16", "autocast was not active in the probe"
    _check_float32(p, probe)


def test_fp16_autocast_with_grad_scaler(mp_run: dict) -> None:
    """FP16_STEPS of nnU-Net's CUDA code path (float16 autocast + GradScaler) on CPU, from a fresh network: finite
    losses and parameters, few steps skipped by the scaler, and the float32 gates as under bfloat16."""
    run = mp_run["train_fp16"]
    if "unsupported" in run:
        pytest.skip(run["unsupported"])
    run = _part_of(mp_run, "train_fp16")
    assert len(run["loss"]) == FP16_STEPS
    assert set(run["output_dtype"]) == {"torch.float16"}
    _assert_training_finite(run, "float16", skipped_ok=run["skipped"])
    assert sum(run["skipped"]) <= 3, f"GradScaler skipped {sum(run['skipped'])} of {FP16_STEPS} steps"
    p = _part_of(mp_run, "probe_fp16")
    assert p["output_dtype"] == "torch.float16"
    _check_float32(p, "probe_fp16")


if __name__ == "__main__":
    worker_main(json.loads(sys.argv[1]))
