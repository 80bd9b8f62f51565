"""The training commands, one module each with a ``main(argv)``: ``python -m training <command>``.

The library they share (data, augmentation, the training step, recipes, ...) is
the rest of the ``training`` package.
"""
