"""``x + m(x)``; the child is named ``m`` as in the released checkpoints."""
import torch
from torch import nn


class Residual(nn.Module):

    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.m(x)
