"""MRFFI: split channels into a global (WTE-Mamba), a local (multi-kernel depthwise) and an
identity part, then mix them with a 1x1 projection (docs/architecture.md, "MRFFI")."""
import torch
from torch import nn

from .conv2d_bn import Conv2d_BN, fuse_conv_bn
from .wavelet_mamba import MBWTConv2d


def nearest_multiple_of_16(n: int) -> int:
    """Round to the nearest multiple of 16, ties up (56 -> 64)."""
    lower = n // 16 * 16
    return lower if n - lower < lower + 16 - n else lower + 16


def split_channels(dim: int, global_ratio: float, local_ratio: float) -> tuple:
    """(global, local, identity) channel counts exactly as the released models use them."""
    g = nearest_multiple_of_16(int(global_ratio * dim))
    lo = int(local_ratio * dim)
    lo = dim - g if g + lo > dim else lo
    return g, lo, dim - g - lo


class DWConv2d_BN_ReLU(nn.Sequential):
    """k x k depthwise conv, BN, ReLU, 1x1 depthwise conv, BN (the local branch).

    ``dwconv3x3`` keeps its name for every kernel size, as in the released checkpoints.
    """

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.add_module('dwconv3x3', nn.Conv2d(channels, channels, kernel_size,
                                               padding=kernel_size // 2, groups=channels,
                                               bias=False))
        self.add_module('bn1', nn.BatchNorm2d(channels))
        self.add_module('relu', nn.ReLU())
        self.add_module('dwconv1x1', nn.Conv2d(channels, channels, 1, groups=channels,
                                               bias=False))
        self.add_module('bn2', nn.BatchNorm2d(channels))

    def fuse(self) -> nn.Sequential:
        """Sequential(k x k conv + bias, ReLU, 1x1 conv + bias)."""
        return nn.Sequential(fuse_conv_bn(self.dwconv3x3, self.bn1), nn.ReLU(),
                             fuse_conv_bn(self.dwconv1x1, self.bn2))


class MRFFI(nn.Module):
    """Multi-receptive-field feature interaction (the reference's MobileMambaModule)."""

    def __init__(self, dim: int, global_ratio: float, local_ratio: float, kernel_size: int,
                 ssm_ratio: float = 2.0, scan_backend: str = 'auto') -> None:
        super().__init__()
        self.splits = split_channels(dim, global_ratio, local_ratio)
        g, lo, _ = self.splits
        self.local_op = DWConv2d_BN_ReLU(lo, kernel_size) if lo > 0 else nn.Identity()
        self.global_op = (MBWTConv2d(g, kernel_size, ssm_ratio, scan_backend)
                          if g > 0 else nn.Identity())
        self.proj = nn.Sequential(nn.ReLU(), Conv2d_BN(dim, dim, bn_weight_init=0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2, x3 = torch.split(x, self.splits, dim=1)
        return self.proj(torch.cat([self.global_op(x1), self.local_op(x2), x3], dim=1))
