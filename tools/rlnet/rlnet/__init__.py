"""RLNet's three-stage training pipeline and the SeNet-style baseline, in PyTorch.

Written from reading RLNet's public code (``sreetamasarkar/rlnet``: ``train_teacher_multigpu.py``,
``train_student_stage{1,2}_multigpu.py``, ``helper/loops.py``, ``helper/loops_robust.py``,
``helper/attack.py``, ``dataset/augmix.py``, ``distiller_zoo``) and the paper (arXiv 2402.05521);
no code is copied. The network definitions are the ones the exporter mirrors
(``tools/pibench_models.py``), so what is trained is exactly what ``tools/export_checkpoint.py``
exports. Entry point: ``tools/rlnet/train.py``; documentation: ``tools/rlnet/README.md``.

Modules: ``data`` (datasets and the CIFAR file formats), ``augment`` (crop/flip and AugMix),
``attack`` (PGD), ``losses`` (KD and attention transfer), ``masks`` (RLNet's per-site budget lists
and the top-k mask), ``nets`` (building, running and checkpointing the networks), ``loops`` (one
epoch of each stage, evaluation), ``stages`` (the stages end to end, with logs).
"""
