"""ResNet-50 (torchvision) with a 7-way head, optionally with CBAM after the last stage."""

import torch
from torch import nn
from torchvision.models import resnet50

from fer_desktop.models.layers import CBAM


class ResNet50FER(nn.Module):
    """torchvision's ResNet-50; ``cbam=True`` inserts CBAM between layer4 and global pooling.

    ``stem_stride``: how much the stem shrinks the input before layer1. torchvision's
    4 (a stride-2 7x7 convolution, then a stride-2 max-pool) suits 224 px photos;
    on a 48 px face it leaves layer1 a 12x12 map and layer4 a 2x2 one. 2 makes the
    convolution stride 1 (same weights, so ImageNet initialisation still loads),
    1 also drops the max-pool; each halving costs about four times the compute.
    ``zero_init_residual`` starts every residual block as the identity (the last
    BatchNorm's scale at zero; Goyal et al., 2017), which steadies training from
    scratch; ImageNet initialisation overwrites it.
    """

    def __init__(self, num_classes: int = 7, cbam: bool = False, dropout: float = 0.3, stem_stride: int = 4,
                 zero_init_residual: bool = True) -> None:
        super().__init__()
        if stem_stride not in (1, 2, 4):
            raise ValueError(f"stem_stride must be 1, 2 or 4, not {stem_stride}")
        # weights=None: ImageNet initialisation is the training script's job
        # (training.train --init imagenet), so building a model never downloads.
        self.backbone = resnet50(weights=None, zero_init_residual=zero_init_residual)
        self.backbone.fc = nn.Identity()
        if stem_stride < 4:
            self.backbone.conv1.stride = (1, 1)
        if stem_stride == 1:
            self.backbone.maxpool = nn.Identity()
        self.cbam = CBAM(2048) if cbam else nn.Identity()
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2048, num_classes))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        x = b.layer4(b.layer3(b.layer2(b.layer1(x))))
        return self.cbam(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.backbone.avgpool(x), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
