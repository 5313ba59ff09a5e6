"""Analysis of trained MSA2 networks: what SACM and MASAG do on a case (``nnunet-msa explain``)."""
