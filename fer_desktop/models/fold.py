"""Fold BatchNorm into the convolution before it, for inference.

In eval mode a BatchNorm is a fixed per-channel scale and shift, so it can be
absorbed into the preceding convolution's weights and bias: the same function
with one layer fewer. For one small face a CPU spends much of a deep network's
time running layers one after another rather than on arithmetic (ResNet-50 takes
86 % of its 96 px time at 64 px, for 44 % of the pixels: bench/RESULTS.md), so
each layer dropped counts. Which convolution feeds which
BatchNorm is read from a ``torch.fx`` trace of the model; the modules stay where
they are (the BatchNorm becomes an ``Identity``), so hooks, ``forward_features``
and the explanation maps work as before.
"""

import logging

import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

log = logging.getLogger(__name__)


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> int:
    """Fold, in place, every ``BatchNorm2d`` fed only by a ``Conv2d``; returns how many were folded.

    The model must be in eval mode (training mode would need the batch's statistics).
    A model that ``torch.fx`` cannot trace is left as it is.
    """
    if model.training:
        raise ValueError("fold_batchnorm needs a model in eval mode")
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception:  # e.g. data-dependent control flow: correct as it is, just not folded
        log.debug("not folding BatchNorm: %s cannot be traced", type(model).__name__, exc_info=True)
        return 0
    modules = dict(model.named_modules())
    folded = 0
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        source = node.args[0]
        if not (isinstance(source, fx.Node) and source.op == "call_module"
                and isinstance(modules.get(source.target), nn.Conv2d) and len(source.users) == 1):
            continue
        conv, bn = modules[source.target], modules[node.target]
        if not bn.track_running_stats or bn.running_mean is None:
            continue
        _replace(model, source.target, fuse_conv_bn_eval(conv, bn))
        _replace(model, node.target, nn.Identity())
        folded += 1
    return folded


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)
