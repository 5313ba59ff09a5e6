"""The input fingerprint tells the slices of a real volume apart after nnU-Net's InstanceNorm (the spec's trap), and
a network trained on real hippocampus and ACDC slices gives π that varies between the slices of one volume (ACDC's
slices cropped to 96×96 to keep the test short).

Data: raw cases of ``../shared/data`` (Task04_Hippocampus MRI, ACDC cine MRI), z-scored per volume as nnU-Net
normalizes MRI, 2D slices padded/cropped to the planned 2d patch of each dataset."""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nnunet_msa.blocks.observe import observe_attention
from nnunet_msa.blocks.sacm import SACM
from nnunet_msa.blocks.sacm_fingerprint import input_fingerprint

REPO = Path(__file__).resolve().parents[1]
#: dataset folder, case ids, 2d patch (nnU-Net's plans), 2d features / strides of a small nnU-Net-like network
DATASETS = {
    "hippocampus": ("Task04_Hippocampus", ["hippocampus_001", "hippocampus_003", "hippocampus_004",
                                           "hippocampus_006"], (56, 40)),
    "acdc": ("ACDC", ["patient003_frame01", "patient004_frame01", "patient005_frame01", "patient006_frame01"],
             (96, 96)),
}


def _data_dir() -> Path:
    override = os.environ.get("NNUNET_MSA_SHARED_DATA", "").strip()
    return Path(override) if override else REPO.parent / "shared" / "data"


def _read(path: Path) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(sitk.ReadImage(str(path))).astype(np.float32)


def _fit(a: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """Centre-crop / zero-pad the last two axes to ``shape``."""
    out = np.zeros(a.shape[:-2] + tuple(shape), dtype=a.dtype)
    src, dst = [], []
    for n, m in zip(a.shape[-2:], shape):
        if n >= m:
            s = (n - m) // 2
            src.append(slice(s, s + m))
            dst.append(slice(0, m))
        else:
            s = (m - n) // 2
            src.append(slice(0, n))
            dst.append(slice(s, s + n))
    out[(Ellipsis, *dst)] = a[(Ellipsis, *src)]
    return out


def _volumes(name: str) -> List[Tuple[np.ndarray, np.ndarray]]:
    folder, cases, patch = DATASETS[name]
    root = _data_dir() / folder
    if not root.is_dir():
        pytest.skip(f"shared data not found at {root}")
    vols = []
    for case in cases:
        img_path = root / "imagesTr" / (case + ("_0000.nii.gz" if name == "acdc" else ".nii.gz"))
        img, seg = _read(img_path), _read(root / "labelsTr" / f"{case}.nii.gz")
        img = (img - img.mean()) / (img.std() + 1e-8)  # nnU-Net's z-score for MRI
        vols.append((_fit(img, patch), _fit(seg, patch).astype(np.int64)))
    return vols


def _stem(channels: int = 16) -> nn.Module:
    """nnU-Net's first encoder block: conv -> InstanceNorm (affine, as planned) -> LeakyReLU."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.InstanceNorm2d(channels, affine=True),
                         nn.LeakyReLU(0.01))


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_scale_statistics_tell_slices_apart_where_mean_and_std_cannot(name):
    """After InstanceNorm every slice's per-channel mean and std are the same (0 and 1 up to eps): a fingerprint of
    those cannot drive the gate. The scale shares s_k still differ between the slices of one volume."""
    img, _ = _volumes(name)[0]
    x = torch.from_numpy(img[:, None])  # (slices, 1, H, W)
    with torch.no_grad():
        h = _stem()[:2](x)  # conv -> InstanceNorm (pre-activation)
        fp = input_fingerprint(h, 3, [True, True], 1e-5).view(len(x), 5, -1)  # (slices, [μ, σ, s1..s3], C)
    mu, sd, scales = fp[:, 0], fp[:, 1], fp[:, 2:]
    assert float(mu.abs().max()) < 1e-4 and float((sd - 1).abs().max()) < 1e-3, "InstanceNorm should fix μ and σ"
    spread = (scales.max(0).values - scales.min(0).values)  # (K, C): range over the slices
    assert float(spread.mean()) > 0.05, spread


def _train(net: nn.Module, vols, steps: int, batch: int) -> None:
    """A few SGD steps on random real slices (cross-entropy on the full-resolution output)."""
    imgs = np.concatenate([v[0] for v in vols])
    segs = np.concatenate([v[1] for v in vols])
    keep = segs.reshape(len(segs), -1).max(1) > 0  # slices with foreground
    imgs, segs = torch.from_numpy(imgs[keep][:, None]), torch.from_numpy(segs[keep])
    opt = torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.9, nesterov=True)
    g = torch.Generator().manual_seed(0)
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, len(imgs), (batch,), generator=g)
        out = net(imgs[idx])
        out = out[0] if isinstance(out, (list, tuple)) else out
        loss = F.cross_entropy(out, segs[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_pi_of_a_trained_network_varies_between_the_slices_of_a_volume(name):
    """The default MSA2 decoder (input fingerprint) on an nnU-Net-like encoder, trained briefly on real slices of
    three volumes, then π of every SACM on each slice of a fourth: π differs between slices in some layer."""
    from nnunet_msa.network.msa2_unet import MSA2UNet
    from nnunet_msa.training import nnUNetTrainerMSA2

    vols = _volumes(name)
    n_classes = int(max(v[1].max() for v in vols)) + 1
    torch.manual_seed(0)
    options = dict(nnUNetTrainerMSA2.msa2_options)
    assert options.get("sacm_fingerprint") == "input", "the default should use the input fingerprint"
    net = MSA2UNet(1, 4, [16, 32, 64, 128], nn.Conv2d, 3, [1, 2, 2, 2], n_classes, 2, n_conv_per_stage=2,
                   conv_bias=True, norm_op=nn.InstanceNorm2d, norm_op_kwargs={"eps": 1e-5, "affine": True},
                   nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True}, deep_supervision=True, **options)
    net.apply(net.initialize)
    _train(net, vols[:3], steps=20, batch=6)
    img, _ = vols[3]
    net.eval()
    with torch.no_grad(), observe_attention(net) as observed:
        pis = {}
        for z in range(len(img)):
            net(torch.from_numpy(img[z:z + 1, None]))
            for i, m in enumerate(observed):
                if isinstance(m, SACM):
                    pis.setdefault(i, []).append(m.last_pi[0].numpy())
    ranges = {i: float((np.max(p, 0) - np.min(p, 0)).max()) for i, p in pis.items()}
    # measured 0.011-0.016 (hippocampus) and 0.009-0.016 (ACDC) per layer; numerical noise is ~1e-7
    assert ranges and max(ranges.values()) > 2e-3, ranges
