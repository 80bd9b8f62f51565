"""Training, measuring and shipping the emotion models.

The commands are in ``training.commands`` (``python -m training --help`` lists
them); the modules here are the library they share: data and streaming,
augmentation, recipes, the training step (``engine``) and a run in progress
(``session``), checkpoints, distributed training, distillation, the card a run
writes (``cards``) and reports.
"""
