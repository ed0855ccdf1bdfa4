"""Deploy-time normalization fusion (the paper's "normalization layer fusion")."""
from torch import nn

from ..layers import BN_Linear, Conv2d_BN, DWConv2d_BN_ReLU

FUSABLE = (Conv2d_BN, DWConv2d_BN_ReLU, BN_Linear)


def fuse_modules(module: nn.Module) -> nn.Module:
    """Replace, in place, every Conv2d_BN, DWConv2d_BN_ReLU and BN_Linear inside ``module``
    by its fused equivalent (LayerNorm, SE, scales and wavelet filters stay); returns it."""
    for name, child in module.named_children():
        if isinstance(child, FUSABLE):
            setattr(module, name, child.fuse().train(child.training))
        else:
            fuse_modules(child)
    return module
