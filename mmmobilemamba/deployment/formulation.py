"""The one switch between the formulation a model trains in and the one it is exported in.

Same math, other ops: what runs fastest in PyTorch on a GPU (the Haar transforms as a
broadcast 4x4 mix, the scan in channel-major layout) is not what runs fastest as an ONNX
graph. ``export_formulation`` sets everything that differs, together, and restores it.
"""
import contextlib
from typing import Iterator

from torch import nn

from ..models.layers.ss2d import SS2D
from ..models.layers.wavelet_mamba import MBWTConv2d


@contextlib.contextmanager
def export_formulation(model: nn.Module, dynamic_hw: bool = False) -> Iterator[nn.Module]:
    """Run ``model`` (any module holding MobileMamba layers) as it is exported, inside the
    ``with`` block only:

    * every SS2D with static H, W runs ``forward_seq_major`` (the chunked scan over
      (B, K, L, d) tensors, sizes read as Python ints: no shape arithmetic in a trace);
      with ``dynamic_hw`` it runs the recursive-doubling scan, whose structure does not
      depend on L, so one traced graph serves every input size;
    * every MBWTConv2d runs its Haar transforms as one Conv / ConvTranspose each.

    Outputs agree with the default formulation to float32 rounding; gradients flow too.
    """
    mode = 'dynamic' if dynamic_hw else 'static'
    modules = [m for m in model.modules() if isinstance(m, (SS2D, MBWTConv2d))]
    saved = [m._export_mode for m in modules]
    for m in modules:
        m._export_mode = mode
    try:
        yield model
    finally:
        for m, s in zip(modules, saved):
            m._export_mode = s
