"""Side-by-side benchmark of nnU-Net's default network/trainer and MSA2 on real nnU-Net plans.

Run ``python -m benchmarks.run --help``. Modules, one concept each:

- ``catalog``: the datasets and plans the benchmark knows (hippocampus, ACDC; 2d, 3d_fullres);
- ``workspace``: raw data, plans and preprocessing produced by nnU-Net's own commands;
- ``networks``: networks, loss and mirroring built the way nnU-Net's trainers build them;
- ``step_cost``: training-step time (interleaved repeats) and FLOPs;
- ``memory_probe``: peak memory of one training step in a fresh subprocess;
- ``planner_estimate``: nnU-Net's planner memory proxy (``compute_conv_feature_map_size``) and the batch it implies;
- ``prediction_time``: sliding-window prediction of one whole case with ``nnUNetPredictor``;
- ``accuracy``: Dice at an equal small budget with the real ``nnUNetv2_train`` command;
- ``stats``: medians, spreads and ratios; ``system_info``: machine and versions;
- ``report`` (markdown, JSON) and ``plot`` (PNG).
"""
