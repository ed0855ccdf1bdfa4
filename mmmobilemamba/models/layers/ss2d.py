"""SS2D, VMamba forward type v052d: a bidirectional, d_state=1 selective scan over the
row-major flattened feature map (spec section 7)."""
import contextlib
import math
from typing import Iterator

import torch
from torch import nn

from mmmobilemamba.ops import selective_scan

from .conv2d_bn import Conv2d_BN

NUM_DIRECTIONS = 2


class SS2D(nn.Module):
    """``out_proj(LayerNorm(scan(silu(dwconv(x)))) * silu(z))`` with ``x, z = in_proj(input)``.

    The per-direction projections are applied to the unflipped sequence; the scan runs
    direction 1 backwards, so no flipped copies of the sequence are materialised.
    """

    def __init__(self, d_model: int, d_state: int = 1, ssm_ratio: float = 2.0,
                 d_conv: int = 3, scan_backend: str = 'auto') -> None:
        super().__init__()
        if d_state != 1:
            raise ValueError(f'SS2D here implements d_state=1 only, got {d_state}.')
        K = NUM_DIRECTIONS
        self.d_inner = d_inner = int(ssm_ratio * d_model)
        self.dt_rank = dt_rank = math.ceil(d_model / 16)
        self.d_state = d_state
        self.scan_backend = scan_backend

        x_proj = torch.empty(K, dt_rank + 2 * d_state, d_inner)
        for k in range(K):  # nn.Linear's default init, one matrix per direction
            nn.init.kaiming_uniform_(x_proj[k], a=math.sqrt(5))
        self.x_proj_weight = nn.Parameter(x_proj)
        self.Ds = nn.Parameter(torch.ones(K * d_inner))
        self.A_logs = nn.Parameter(torch.zeros(K * d_inner, d_state))
        self.dt_projs_weight = nn.Parameter(0.1 * torch.rand(K, d_inner, dt_rank))
        self.dt_projs_bias = nn.Parameter(0.1 * torch.rand(K, d_inner))

        self.out_norm = nn.LayerNorm(d_inner)
        self.in_proj = Conv2d_BN(d_model, 2 * d_inner)
        self.act = nn.SiLU()
        self.conv2d = nn.Conv2d(d_inner, d_inner, d_conv, padding=(d_conv - 1) // 2,
                                groups=d_inner, bias=True)
        self.out_proj = Conv2d_BN(d_inner, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        K, d = NUM_DIRECTIONS, self.d_inner
        x, z = self.in_proj(x).chunk(2, dim=1)
        z = self.act(z)
        u = self.act(self.conv2d(x)).flatten(2)                          # (B, d, L)
        x_dbl = torch.einsum('kcd,bdl->bkcl', self.x_proj_weight.to(u.dtype), u)
        dts, B, C = torch.split(x_dbl, [self.dt_rank, 1, 1], dim=2)
        delta = torch.einsum('kdr,bkrl->bkdl', self.dt_projs_weight.to(u.dtype), dts)
        y = selective_scan(
            u, delta, -torch.exp(self.A_logs.float()).view(K, d),
            B.squeeze(2), C.squeeze(2), self.Ds.float().view(K, d),
            self.dt_projs_bias.float(), backend=self.scan_backend)        # (B, d, L), fp32
        y = self.out_norm(y.transpose(1, 2)).transpose(1, 2).reshape(b, d, h, w)
        return self.out_proj(y * z)


@contextlib.contextmanager
def scan_backend(model: nn.Module, backend: str) -> Iterator[None]:
    """Temporarily run every SS2D of ``model`` with the scan ``backend`` (FLOP counting,
    export), restoring each one's own choice afterwards."""
    blocks = [m for m in model.modules() if isinstance(m, SS2D)]
    saved = [m.scan_backend for m in blocks]
    for m in blocks:
        m.scan_backend = backend
    try:
        yield
    finally:
        for m, b in zip(blocks, saved):
            m.scan_backend = b
