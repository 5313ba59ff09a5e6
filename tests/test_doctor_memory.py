"""``nnunet-msa doctor -d -c``: the MSA2 network's training memory at the planned patch and batch (nnU-Net's planner
rule) against the GPU's memory; over it, a warning that names ``_lowMemory`` and ``nnunet-msa plan``."""
from __future__ import annotations

import pytest

import e2e_helpers as h

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("gpu_gb, warned", [(0.05, True), (80.0, False)])
def test_doctor_warns_when_the_estimate_exceeds_the_gpu(hippocampus, e2e_workspace, gpu_gb, warned) -> None:
    ran = h.run(["nnunet-msa", "doctor", "-d", str(hippocampus.dataset_id), "-c", hippocampus.configs["3d_fullres"],
                 "--gpu-memory", str(gpu_gb)], e2e_workspace.env, e2e_workspace.logs / f"doctor_{gpu_gb}.log",
                label=f"nnunet-msa doctor --gpu-memory {gpu_gb}")
    assert "GB to train of the GPU's" in ran.output, ran.output[-2000:]
    assert ("WARN" in ran.output) == warned, ran.output[-2000:]
    if warned:
        assert "nnUNetTrainerMSA2_lowMemory" in ran.output and "nnunet-msa plan" in ran.output


def test_the_estimate_is_nnunets_rule_and_msa2_is_above_nnunet() -> None:
    """nnU-Net's reference value at its reference batch is 8 GB by construction; MSA2's network needs more than
    nnU-Net's on the same configuration (the 1.3-1.5x of the cost benchmark)."""
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    from nnunet_msa.cli.doctor import estimated_training_gb, memory_warning
    from test_fp16_large_patch import _configuration

    import nnunet_msa.training as training

    cm = _configuration()
    msa2 = training.nnUNetTrainerMSA2.build_network_architecture(None, cm, 1, 3, True)
    kw = cm.network_arch_init_kwargs
    plain = PlainConvUNet(1, kw["n_stages"], kw["features_per_stage"], __import__("torch").nn.Conv3d,
                          kw["kernel_sizes"], kw["strides"], kw["n_conv_per_stage"], 3, kw["n_conv_per_stage_decoder"])
    a, b = (estimated_training_gb(n, cm.patch_size, 2) for n in (plain, msa2))
    assert 1.05 < b / a < 3, (a, b)
    assert memory_warning("nnUNetTrainerMSA2", b, b * 2, "3d") is None
    assert "nnUNetTrainerMSA2_lowMemory" in memory_warning("nnUNetTrainerMSA2", b, b / 2, "3d")
