"""MobileMambaBlock: DW conv, FFN, MRFFI token mixer, DW conv, FFN, each residual, inside one
outer skip that carries the drop path (docs/architecture.md, "MobileMambaBlock")."""
import torch
from torch import nn

from .conv2d_bn import Conv2d_BN
from .drop_path import DropPath
from .ffn import FFN
from .mrffi import MRFFI
from .residual import Residual


class TokenMixer(nn.Module):
    """Holds the MRFFI as ``attn`` so the state_dict path is ``mixer.m.attn.*``."""

    def __init__(self, attn: nn.Module) -> None:
        super().__init__()
        self.attn = attn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x)


class MobileMambaBlock(nn.Module):

    def __init__(self, dim: int, global_ratio: float, local_ratio: float, kernel_size: int,
                 ssm_ratio: float = 2.0, drop_path: float = 0.0,
                 scan_backend: str = 'auto') -> None:
        super().__init__()
        self.dw0 = Residual(Conv2d_BN(dim, dim, 3, 1, 1, groups=dim, bn_weight_init=0))
        self.ffn0 = Residual(FFN(dim, 2 * dim))
        self.mixer = Residual(TokenMixer(MRFFI(dim, global_ratio, local_ratio, kernel_size,
                                               ssm_ratio, scan_backend)))
        self.dw1 = Residual(Conv2d_BN(dim, dim, 3, 1, 1, groups=dim, bn_weight_init=0))
        self.ffn1 = Residual(FFN(dim, 2 * dim))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ffn1(self.dw1(self.mixer(self.ffn0(self.dw0(x)))))
        return x + self.drop_path(y)
