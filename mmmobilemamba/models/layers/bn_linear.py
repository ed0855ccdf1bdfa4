"""BatchNorm1d followed by Linear: MobileMamba's classifier, foldable into one Linear."""
import torch
from torch import nn


class BN_Linear(nn.Sequential):
    """BN + Linear with children ``bn`` and ``l`` (the released checkpoints' names)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 std: float = 0.02) -> None:
        super().__init__()
        self.add_module('bn', nn.BatchNorm1d(in_features))
        self.add_module('l', nn.Linear(in_features, out_features, bias=bias))
        nn.init.trunc_normal_(self.l.weight, std=std)
        if bias:
            nn.init.constant_(self.l.bias, 0)

    @torch.no_grad()
    def fuse(self) -> nn.Linear:
        """Return one ``nn.Linear`` equal to this pair in eval mode."""
        bn, lin = self.bn, self.l
        scale = bn.weight / (bn.running_var + bn.eps).sqrt()
        shift = bn.bias - bn.running_mean * scale
        fused = nn.Linear(lin.in_features, lin.out_features, device=lin.weight.device,
                          dtype=lin.weight.dtype)
        fused.weight.copy_(lin.weight * scale[None, :])
        bias = lin.weight @ shift
        fused.bias.copy_(bias if lin.bias is None else bias + lin.bias)
        return fused
