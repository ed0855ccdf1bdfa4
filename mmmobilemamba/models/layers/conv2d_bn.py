"""Conv2d followed by BatchNorm2d, foldable into one biased conv for deployment."""
import torch
from torch import nn


class Conv2d_BN(nn.Sequential):
    """Conv (no bias) + BN with children ``c`` and ``bn``, as the released checkpoints name them."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1,
                 stride: int = 1, padding: int = 0, dilation: int = 1, groups: int = 1,
                 bn_weight_init: float = 1.0) -> None:
        super().__init__()
        self.add_module('c', nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                                       padding, dilation, groups, bias=False))
        self.add_module('bn', nn.BatchNorm2d(out_channels))
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.constant_(self.bn.bias, 0)

    def fuse(self) -> nn.Conv2d:
        """Return one ``nn.Conv2d`` with bias computing the same eval-mode function."""
        return fuse_conv_bn(self.c, self.bn)


@torch.no_grad()
def fuse_conv_bn(c: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """Fold an eval-mode BN into the preceding bias-free conv."""
    scale = bn.weight / (bn.running_var + bn.eps).sqrt()
    conv = nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding,
                     c.dilation, c.groups, bias=True, device=c.weight.device,
                     dtype=c.weight.dtype)
    conv.weight.copy_(c.weight * scale[:, None, None, None])
    conv.bias.copy_(bn.bias - bn.running_mean * scale)
    return conv
