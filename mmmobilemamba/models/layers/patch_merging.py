"""Stride-2 downsampling between stages: expand, depthwise stride-2 conv, squeeze-excite, project."""
import torch
from torch import nn

from .conv2d_bn import Conv2d_BN


class SqueezeExcite(nn.Module):
    """``x * sigmoid(fc2(relu(fc1(mean_hw(x)))))`` with biased 1x1 convs ``fc1``/``fc2``."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, reduced, 1)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * torch.sigmoid(s)


class PatchMerging(nn.Module):
    """``conv3(se(relu(conv2(relu(conv1(x))))))``; output size ``floor((H - 1) / 2) + 1``."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        hidden = 4 * dim
        self.conv1 = Conv2d_BN(dim, hidden)
        self.act = nn.ReLU()
        self.conv2 = Conv2d_BN(hidden, hidden, 3, 2, 1, groups=hidden)
        self.se = SqueezeExcite(hidden, max(8, int(dim + 4) // 8 * 8))
        self.conv3 = Conv2d_BN(hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv2(self.act(self.conv1(x))))
        return self.conv3(self.se(x))
