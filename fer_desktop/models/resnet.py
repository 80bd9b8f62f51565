"""ResNet-50 (torchvision) with a 7-way head, optionally with CBAM after the last stage."""

import torch
from torch import nn
from torchvision.models import resnet50

from fer_desktop.models.layers import CBAM


class ResNet50FER(nn.Module):
    """torchvision's ResNet-50; ``cbam=True`` inserts CBAM between layer4 and global pooling."""

    def __init__(self, num_classes: int = 7, cbam: bool = False, dropout: float = 0.3) -> None:
        super().__init__()
        # weights=None: ImageNet initialisation is the training script's job
        # (training.train --init imagenet), so building a model never downloads.
        self.backbone = resnet50(weights=None)
        self.backbone.fc = nn.Identity()
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
