"""Folding BatchNorm into convolutions changes no prediction, for every architecture."""

import pytest
import torch
from torch import nn

from fer_desktop.models import create_model, list_models
from fer_desktop.models.fold import fold_batchnorm


def _with_statistics(model: nn.Module) -> nn.Module:
    """Running statistics and affine parameters away from their defaults, so folding has work to do."""
    gen = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            module.bias.data.copy_(torch.rand(n, generator=gen) - 0.5)
    return model.eval()


@pytest.mark.parametrize("name", list_models())
def test_folding_keeps_the_function_and_drops_every_batchnorm(name):
    torch.manual_seed(0)
    model = _with_statistics(create_model(name))
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        before = model(x)
        features = model.forward_features(x)
    batchnorms = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert fold_batchnorm(model, x) == batchnorms > 0
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    with torch.no_grad():
        torch.testing.assert_close(model(x), before, rtol=1e-4, atol=1e-4 * before.abs().max().item())
        # forward_features (Grad-CAM's entry) still works on the folded modules
        assert model.forward_features(x).shape == features.shape


def test_a_batchnorm_not_fed_by_a_convolution_stays():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4)).eval()
    assert fold_batchnorm(model, torch.randn(1, 3, 8, 8)) == 0 and isinstance(model[2], nn.BatchNorm2d)


class _BatchNormFirst(nn.Module):
    """Registered as conv, bn, but runs bn before conv: folding would change it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        return self.conv(self.bn(x))


def test_a_fold_that_would_change_the_output_is_undone():
    model = _with_statistics(_BatchNormFirst())
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        before = model(x)
    assert fold_batchnorm(model, x) == 0 and isinstance(model.bn, nn.BatchNorm2d)
    with torch.no_grad():
        torch.testing.assert_close(model(x), before)


def test_training_mode_is_refused():
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), torch.randn(1, 3, 8, 8))
