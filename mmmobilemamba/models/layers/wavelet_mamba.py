"""WTE-Mamba (MBWTConv2d): SS2D at full resolution plus a depthwise conv in the Haar
wavelet domain, reconstructed by the inverse transform (docs/architecture.md, "WTE-Mamba")."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .ss2d import SS2D


def haar_filters(channels: int) -> torch.Tensor:
    """(4C, 1, 2, 2) Haar bands LL, LH, HL, HH repeated per channel (index ``c*4 + band``)."""
    lo = torch.tensor([0.5 ** 0.5, 0.5 ** 0.5])
    hi = torch.tensor([0.5 ** 0.5, -(0.5 ** 0.5)])
    bands = torch.stack([lo[:, None] * lo[None], hi[:, None] * lo[None],
                         lo[:, None] * hi[None], hi[:, None] * hi[None]])
    return bands[:, None].repeat(channels, 1, 1, 1)


class ScaleModule(nn.Module):
    """Learned per-channel multiplier stored as ``weight`` of shape (1, C, 1, 1)."""

    def __init__(self, channels: int, init_scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((1, channels, 1, 1), init_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * x


class MBWTConv2d(nn.Module):
    """``base_scale * SS2D(x) + IWT(wavelet_scale * DWConv_k(WT(pad_to_even(x))))``."""

    def __init__(self, channels: int, kernel_size: int = 5, ssm_ratio: float = 2.0,
                 scan_backend: str = 'auto') -> None:
        super().__init__()
        self.channels = channels
        filters = haar_filters(channels)
        # Frozen parameters (not buffers) so the released state_dicts and param counts match.
        self.wt_filter = nn.Parameter(filters.clone(), requires_grad=False)
        self.iwt_filter = nn.Parameter(filters.clone(), requires_grad=False)
        self.global_atten = SS2D(channels, ssm_ratio=ssm_ratio, scan_backend=scan_backend)
        self.base_scale = ScaleModule(channels, 1.0)
        self.wavelet_convs = nn.ModuleList([
            nn.Conv2d(4 * channels, 4 * channels, kernel_size, padding=kernel_size // 2,
                      groups=4 * channels, bias=False)])
        self.wavelet_scale = nn.ModuleList([ScaleModule(4 * channels, 0.1)])
        #: Pad by 1 or 2, not 0 or 1: the crop at the end is then a strict slice for every
        #: size, so a graph traced with symbolic sizes (torch.compile(dynamic=True)) serves
        #: odd and even sizes alike, instead of one graph per parity of each level's map.
        #: The same result: the extra band row/column is the transform of zeros, which the
        #: convolution's zero padding supplies anyway. The backbone's compile_cfg sets it.
        self.pad_any_parity = False
        #: None, or 'static' / 'dynamic' while ``mmmobilemamba.deployment.export_formulation``
        #: is active: then the Haar transforms run as F.conv2d / F.conv_transpose2d.
        self._export_mode: Optional[str] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.pad_any_parity:  # 1 or 2 rows/columns, never 0
            xp = F.pad(x, (0, 2 - w % 2, 0, 2 - h % 2))
        else:
            xp = F.pad(x, (0, w % 2, 0, h % 2))
        as_conv = self._export_mode is not None
        if as_conv:
            bands = F.conv2d(xp, self.wt_filter, stride=2, groups=self.channels)
        else:
            bands = haar_analysis(xp, self.wt_filter)
        bands = self.wavelet_scale[0](self.wavelet_convs[0](bands))
        if as_conv:
            wave = F.conv_transpose2d(bands, self.iwt_filter, stride=2, groups=self.channels)
        else:
            wave = haar_synthesis(bands, self.iwt_filter)
        return self.base_scale(self.global_atten(x)) + wave[..., :h, :w]


# The transforms are 2x2, stride-2 grouped (de)convolutions with one channel per group:
# a 4x4 mix of each 2x2 pixel block. They are written as that mix, which computes the
# same sums as F.conv2d / F.conv_transpose2d with these filters, because cuDNN runs the
# grouped transposed convolution (and the forward's input gradient) group by group, which
# took two thirds of an S6 forward on an H100. An ONNX export wants the opposite: as
# convolutions (``export_formulation``) each transform is one node; the mix traces as dozens.
def _mix4(t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``out[:, c, i] = sum_j m[c, i, j] * t[:, c, j]`` for t (N, C, 4, H, W), m (C, 4, 4),
    accumulated in float32 at least (as a convolution would) and returned in t's dtype."""
    acc = torch.promote_types(t.dtype, torch.float32)
    out = (m[None, :, :, :, None, None].to(acc) * t[:, :, None].to(acc)).sum(3)
    return out.to(t.dtype)


def haar_analysis(x: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """``F.conv2d(x, filters, stride=2, groups=C)`` for (4C, 1, 2, 2) filters, even H, W."""
    n, c, h, w = x.shape
    blocks = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    blocks = blocks.reshape(n, c, 4, h // 2, w // 2)          # [.., 2p + q, i, j]
    return _mix4(blocks, filters.reshape(c, 4, 4)).reshape(n, 4 * c, h // 2, w // 2)


def haar_synthesis(bands: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """``F.conv_transpose2d(bands, filters, stride=2, groups=C)`` for (4C, 1, 2, 2)
    filters: each band value spreads over its 2x2 output block."""
    n, c4, h, w = bands.shape
    c = c4 // 4
    out = _mix4(bands.reshape(n, c, 4, h, w), filters.reshape(c, 4, 4).transpose(1, 2))
    out = out.reshape(n, c, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
    return out.reshape(n, c, 2 * h, 2 * w)
