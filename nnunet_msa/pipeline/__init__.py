"""Helpers that drive nnU-Net's real ``nnUNetv2_*`` commands in subprocesses (demo, tests, benchmarks)."""
