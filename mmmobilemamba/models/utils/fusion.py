"""Deploy-time normalization fusion (the paper's "normalization layer fusion")."""
from torch import nn


def fuse_modules(module: nn.Module) -> nn.Module:
    """Replace, in place, every submodule that defines ``fuse()`` (Conv2d_BN,
    DWConv2d_BN_ReLU, BN_Linear) by its fused equivalent; returns ``module``."""
    for name, child in module.named_children():
        if callable(getattr(child, 'fuse', None)):
            setattr(module, name, child.fuse())
        else:
            fuse_modules(child)
    return module
