"""The network presets (one JSON per preset), installed as ``nnunet_msa.presets``: the product presets here, the
accuracy protocol's experiments (and their former names) in ``experiments/``; read by
``nnunet_msa.network.presets``, the trainers, the MSA2 planners, ``nnunet-msa plan --preset NAME`` and
``nnunet-msa trainers``."""
