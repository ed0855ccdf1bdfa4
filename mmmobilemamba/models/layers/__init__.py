"""MobileMamba's building blocks, one idea per file; plain PyTorch, no OpenMMLab imports."""
from .bn_linear import BN_Linear
from .conv2d_bn import Conv2d_BN, fuse_conv_bn
from .drop_path import DropPath
from .ffn import FFN
from .mobilemamba_block import MobileMambaBlock
from .mrffi import MRFFI, DWConv2d_BN_ReLU, split_channels
from .patch_merging import PatchMerging, SqueezeExcite
from .residual import Residual
from .ss2d import SS2D
from .wavelet_mamba import MBWTConv2d

__all__ = ['BN_Linear', 'Conv2d_BN', 'fuse_conv_bn', 'DropPath', 'FFN', 'MobileMambaBlock',
           'MRFFI', 'DWConv2d_BN_ReLU', 'split_channels', 'PatchMerging', 'SqueezeExcite',
           'Residual', 'SS2D', 'MBWTConv2d']
