"""Fold BatchNorm into the convolution before it, for inference.

In eval mode a BatchNorm is a fixed per-channel scale and shift, so it can be
absorbed into the preceding convolution's weights and bias: the same function
with one layer fewer. For one small face a CPU spends much of a deep network's
time running layers one after another rather than on arithmetic, so each layer
dropped counts (bench/resnets/RESULTS.md; the README has before and after).

A convolution and the BatchNorm registered right after it in the same parent
(``nn.Sequential``, torchvision's ``conv1``/``bn1`` pairs, ``SpatialAttention``)
are folded. Registration order is not proof of data flow, so the result is
checked on an example input and every fold is undone if it changed the output.
Nothing traces the model: ``torch.fx`` tracing patches ``nn.Module.__call__``
for the whole process, which broke the model serving in another thread while a
new one loaded. The modules stay where they are (the BatchNorm becomes an
``Identity``), so hooks, ``forward_features`` and the explanation maps work as before.
"""

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


@torch.no_grad()
def fold_batchnorm(model: nn.Module, example: torch.Tensor) -> int:
    """Fold, in place, each ``BatchNorm2d`` registered right after a ``Conv2d``; returns how many.

    ``example`` is an input batch for the check. The model must be in eval mode
    (training mode would need the batch's statistics).
    """
    if model.training:
        raise ValueError("fold_batchnorm needs a model in eval mode")
    before = model(example)
    undo: list[tuple[nn.Module, str, nn.Module]] = []
    for parent in list(model.modules()):
        children = list(parent.named_children())
        for (conv_name, conv), (bn_name, bn) in zip(children, children[1:]):
            if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
                    and bn.track_running_stats and bn.running_mean is not None
                    and bn.num_features == conv.out_channels):
                continue
            setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
            setattr(parent, bn_name, nn.Identity())
            undo += [(parent, conv_name, conv), (parent, bn_name, bn)]
    if undo:
        after = model(example)
        scale = before.abs().max().item() + 1e-6
        if not torch.allclose(after, before, rtol=1e-3, atol=1e-4 * scale):
            for parent, name, module in reversed(undo):
                setattr(parent, name, module)
            return 0
    return len(undo) // 2
