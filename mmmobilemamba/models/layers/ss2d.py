"""SS2D, VMamba forward type v052d: a bidirectional, d_state=1 selective scan over the
row-major flattened feature map (docs/architecture.md, "SS2D")."""
import contextlib
import math
from typing import Iterator, Optional

import torch
from torch import nn

from mmmobilemamba.ops import selective_scan
from mmmobilemamba.ops.scan_chunked import linear_scan, scan_doubling

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
        #: None, or 'static' / 'dynamic' (H, W) while ``mmmobilemamba.deployment.
        #: export_formulation`` is active: the formulation an ONNX export traces.
        self._export_mode: Optional[str] = None

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
        if self._export_mode == 'static':
            return self.forward_seq_major(x)
        b, _, h, w = x.shape
        K, d = NUM_DIRECTIONS, self.d_inner
        x, z = self.in_proj(x).chunk(2, dim=1)
        z = self.act(z)
        u = self.act(self.conv2d(x)).flatten(2)                          # (B, d, L)
        x_dbl = torch.einsum('kcd,bdl->bkcl', self.x_proj_weight.to(u.dtype), u)
        dts, B, C = torch.split(x_dbl, [self.dt_rank, 1, 1], dim=2)
        delta = torch.einsum('kdr,bkrl->bkdl', self.dt_projs_weight.to(u.dtype), dts)
        args = (u, delta, -torch.exp(self.A_logs.float()).view(K, d), B.squeeze(2),
                C.squeeze(2), self.Ds.float().view(K, d), self.dt_projs_bias.float())
        if self._export_mode == 'dynamic':  # structure independent of L: any H, W
            y = scan_doubling(*args)
        else:
            y = selective_scan(*args, backend=self.scan_backend)          # (B, d, L), fp32
        y = self.out_norm(y.transpose(1, 2)).transpose(1, 2).reshape(b, d, h, w)
        return self.out_proj(y * z)

    def forward_seq_major(self, x: torch.Tensor) -> torch.Tensor:
        """``forward`` with the sequences laid out (B, K, L, d), positions before channels,
        and direction 1 stored reversed; the ``'chunked'`` scan runs along L.

        Same math, different memory order: the chunked scan's splits and concats then move
        whole rows of d channels, the LayerNorm needs no transposes, and softplus is written
        with Exp/Log, which onnxruntime vectorises (its Softplus kernel does not; the
        rewrite's absolute error on dt is below 1e-7). Exported this way (with the Haar
        transforms as convolutions), S6 ran 1.5x faster on onnxruntime on a 2-core CPU
        (docs/deployment.md); in eager PyTorch it is on par with ``forward``.
        """
        h, w = int(x.shape[2]), int(x.shape[3])  # static in a trace: no shape arithmetic
        K, d = NUM_DIRECTIONS, self.d_inner
        x, z = torch.split(self.in_proj(x), [d, d], dim=1)
        z = self.act(z)
        u = self.act(self.conv2d(x)).reshape(-1, d, h * w).transpose(1, 2)  # (B, L, d)
        seqs = torch.stack([u, u.flip(1)], 1)                             # (B, K, L, d)
        x_dbl = torch.matmul(seqs, self.x_proj_weight.to(u.dtype).transpose(1, 2))
        dts, B, C = torch.split(x_dbl, [self.dt_rank, 1, 1], dim=-1)     # (B, K, L, .)
        dtype = torch.promote_types(u.dtype, torch.float32)              # the scan's dtype
        delta = torch.matmul(dts, self.dt_projs_weight.to(u.dtype).transpose(1, 2))
        dt = softplus_exp_log(delta.to(dtype) + self.dt_projs_bias.to(dtype)[:, None])
        A = -torch.exp(self.A_logs.to(dtype)).view(K, 1, d)
        seqs, B, C = seqs.to(dtype), B.to(dtype), C.to(dtype)
        y = C * linear_scan(torch.exp(dt * A), dt * B * seqs, dim=-2)
        y = y[:, 0] + y[:, 1].flip(1) + self.Ds.to(dtype).view(K, d).sum(0) * seqs[:, 0]
        y = self.out_norm(y).transpose(1, 2).reshape(-1, d, h, w)
        return self.out_proj(y * z)


def softplus_exp_log(z: torch.Tensor, threshold: float = 20.0) -> torch.Tensor:
    """``softplus(z)`` as ``max(z, log(1 + exp(min(z, threshold))))``: ops that every ONNX
    runtime vectorises. Rounding ``1 + exp(z)`` costs at most 6e-8 absolute (dt ~ 0 there);
    above ``threshold`` it returns z, as ``F.softplus`` does."""
    return torch.maximum(z, torch.log(1 + torch.exp(torch.clamp(z, max=threshold))))


@contextlib.contextmanager
def scan_backend(model: nn.Module, backend: str) -> Iterator[None]:
    """Temporarily run every SS2D of ``model`` with the scan ``backend`` (FLOP counting),
    restoring each one's own choice afterwards."""
    blocks = [m for m in model.modules() if isinstance(m, SS2D)]
    saved = [m.scan_backend for m in blocks]
    for m in blocks:
        m.scan_backend = backend
    try:
        yield
    finally:
        for m, b in zip(blocks, saved):
            m.scan_backend = b
