"""The benchmark's FLOP counter counts grouped-conv backward right (torch's own overcounts it by ~groups)."""
import torch
import torch.nn.functional as F

from benchmarks.flop_count import flop_counter


def test_depthwise_and_dense_conv_backward_flops():
    x = torch.randn(1, 32, 10, 10, 10, requires_grad=True)
    for w, groups in ((torch.randn(32, 1, 3, 3, 3, requires_grad=True), 32),
                      (torch.randn(16, 32, 3, 3, 3, requires_grad=True), 1)):
        forward = 2 * 1000 * w.numel()  # 2 · output voxels · weight elements (C_out · C_in/groups · k³)
        with flop_counter() as f:
            F.conv3d(x, w, padding=1, groups=groups).sum().backward()
        assert f.get_total_flops() == 3 * forward  # forward + grad input + grad weight
