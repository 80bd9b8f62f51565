"""The two custom CNNs of the paper: a baseline and one with spatial attention.

Both are three convolutional blocks followed by a two-layer classifier. An
adaptive pooling before the classifier lets the same network run at any input
size; the size a set of weights was trained at is recorded in its card.
"""

import torch
from torch import nn

from fer_desktop.models.layers import SpatialAttention


def conv_block(in_channels: int, out_channels: int, convs: int = 2) -> nn.Sequential:
    """``convs`` x (Conv-BN-ReLU), then a 2x2 max-pool."""
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [
            nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        ]
    layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class CustomCNN(nn.Module):
    """Three Conv-ReLU-MaxPool blocks, optional spatial attention, two FC layers."""

    def __init__(
        self,
        num_classes: int = 7,
        widths: tuple[int, int, int] = (64, 128, 256),
        convs_per_block: int = 2,
        hidden: int = 256,
        dropout: float = 0.5,
        attention: bool = False,
        pooled_size: int = 3,
    ) -> None:
        super().__init__()
        blocks, in_ch = [], 3
        for width in widths:
            blocks.append(conv_block(in_ch, width, convs_per_block))
            in_ch = width
        self.features = nn.Sequential(*blocks)
        self.attention = SpatialAttention() if attention else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(pooled_size)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(in_ch * pooled_size * pooled_size, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(self.features(x))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
