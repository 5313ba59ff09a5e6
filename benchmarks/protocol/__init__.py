"""The accuracy protocol: MSA2 against nnU-Net's default on a held-back test set, several seeds, with intervals.

``python -m benchmarks.protocol`` (see ``__main__``):

1. **Split once** (``design.prepare_split``): the dataset's cases (ACDC: patients) are split by a fixed seed into a
   training pool and a test set (a quarter); no training run, model choice or default sees the test set. nnU-Net's
   fold 0 (``splits_final.json``) trains on the pool but a few cases, on which nnU-Net runs its own validation.
2. **Train** every (trainer, iteration budget, seed) with the real ``nnUNetv2_train`` (the trainer's ``_budget``
   variant, ``nnUNetMSA_seed``, a configuration that inherits the planned one with the protocol's batch), each run in
   a results folder of its own (``runner``).
3. **Test**: the real ``nnUNetv2_predict`` from ``checkpoint_final.pth`` (mirroring on) on the test images, Dice per
   class per case against the reference labels.
4. **Cache**: each finished run is a small JSON record (``records``) under ``benchmarks/results/protocol`` (kept
   in the repository), keyed by plan, trainer, network signature, budget, batch, seed and split; a run whose record
   exists is never trained again, so seeds and trainers can be added on later days. A run stopped before its
   record (a closed session) goes on from its last epoch's checkpoint the next time (``nnUNetv2_train --c``;
   ``--no-resume`` starts it again): a 3-hour 3d_fullres run can span working sessions.
5. **Report** (``report``): mean ± sd over seeds; the paired per-case difference to nnU-Net's default with a
   bootstrap 95 % interval over cases and seeds (``bootstrap``), at equal iterations and at equal training time
   (nnU-Net's Dice interpolated between its budgets at the other trainer's training time); a table and a plot of
   Dice against training time.
"""
