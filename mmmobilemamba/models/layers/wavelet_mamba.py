"""WTE-Mamba (MBWTConv2d): SS2D at full resolution plus a depthwise conv in the Haar
wavelet domain, reconstructed by the inverse transform (spec section 6)."""
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        c = self.channels
        xp = F.pad(x, (0, w % 2, 0, h % 2))
        bands = F.conv2d(xp, self.wt_filter.to(x.dtype), stride=2, groups=c)
        bands = self.wavelet_scale[0](self.wavelet_convs[0](bands))
        wave = F.conv_transpose2d(bands, self.iwt_filter.to(x.dtype), stride=2, groups=c)
        return self.base_scale(self.global_atten(x)) + wave[..., :h, :w]
