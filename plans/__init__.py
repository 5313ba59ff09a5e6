"""The network presets (one JSON per preset), installed as ``nnunet_msa.presets``; read by
``nnunet_msa.network.presets``, the trainers, the MSA2 planners and ``nnunet-msa plan --preset NAME``."""
