"""Pointwise feed-forward: 1x1 Conv2d_BN, ReLU, 1x1 Conv2d_BN (zero-initialised BN gamma)."""
import torch
from torch import nn

from .conv2d_bn import Conv2d_BN


class FFN(nn.Module):

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.pw1 = Conv2d_BN(dim, hidden_dim)
        self.act = nn.ReLU()
        self.pw2 = Conv2d_BN(hidden_dim, dim, bn_weight_init=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw2(self.act(self.pw1(x)))
