"""ONNX export of MobileMamba classifiers and backbones, and its check with onnxruntime.

The scan exports as ordinary ONNX ops (Exp, Mul, Add, Pad, Slice, ...), no custom op, so
any runtime loads the file. The model is traced in its export formulation
(``export_formulation``): with static H, W the chunked scan in sequence-major layout, whose
structure follows L; with ``dynamic_hw=True`` the recursive-doubling scan, whose structure
does not, so one file runs at any input size (at some cost in speed). The graph takes
normalised images (the data preprocessor's mean/std are not part of it), as in mmdeploy.
"""
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ..models.backbones.mobilemamba import MIN_INPUT_SIZE, MobileMamba
from ..models.utils.fusion import fuse_modules
from .formulation import export_formulation


class ClassifierLogits(nn.Module):
    """An mmpretrain classifier as ``images -> logits`` (``mode='tensor'``)."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x, mode='tensor')


def load_for_export(config: Optional[str] = None, checkpoint: Optional[str] = None,
                    arch: Optional[str] = None) -> nn.Module:
    """The model to export, in eval mode with every BatchNorm fused.

    Either ``config`` (an mmpretrain classification config; exported as logits) or ``arch``
    (a bare backbone; exported as its ``out_indices`` feature maps). ``checkpoint`` is
    loaded strictly; without one the weights are random (a warning says so)."""
    if (config is None) == (arch is None):
        raise ValueError('Give either a classification config or --arch for a bare backbone.')
    if config is not None:
        from mmengine.config import Config
        from mmpretrain.apis import init_model
        cfg = Config.fromfile(config)
        if cfg.get('default_scope', 'mmpretrain') != 'mmpretrain':
            raise ValueError(f'{config} is a {cfg.default_scope} config; ONNX export here '
                             'covers classifiers (mmpretrain) and bare backbones (--arch). '
                             'Export detectors and segmentors with mmdeploy.')
        model = ClassifierLogits(init_model(cfg, checkpoint, device='cpu'))
    else:
        model = MobileMamba(arch)
        if checkpoint is not None:
            from ..utils import load_backbone_checkpoint
            load_backbone_checkpoint(model, checkpoint, strict=True)
        else:
            warnings.warn(f'Exporting MobileMamba-{arch} with RANDOM weights (no checkpoint).')
    model.eval()
    fuse_modules(model)
    return model


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def default_img_size(model: nn.Module) -> Tuple[int, int]:
    """The input size of ``model``'s MobileMamba variant (224 for a custom arch)."""
    backbone = next(m for m in model.modules() if isinstance(m, MobileMamba))
    size = MobileMamba.arch_resolution.get(backbone.arch_name or '', 224)
    return size, size


def export_onnx(model: nn.Module, path: str, img_size: Tuple[int, int] = (224, 224),
                dynamic_hw: bool = False, opset: int = 17) -> List[str]:
    """Export with a dynamic batch (and H, W if asked); returns the output names.

    Uses ``torch.onnx.export``'s TorchScript tracer (``dynamo=False``). It records shape
    arithmetic as ONNX ops, so the doubling scan runs at any H, W (odd sizes included).
    The ``torch.export`` path fixes H and W through the convolutions' shape guards, and it
    also exports several times slower."""
    if opset < 17:
        raise ValueError(f'opset {opset} is too old: LayerNormalization needs opset >= 17.')
    h, w = img_size
    if min(h, w) < MIN_INPUT_SIZE:
        raise ValueError(f'img_size {img_size} is below the {MIN_INPUT_SIZE}px minimum; '
                         f'export at {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} or larger.')
    x = torch.randn(1, 3, h, w, device=_device_of(model))  # a CUDA model traces on CUDA
    with torch.no_grad():
        outs = model(x)
    names = ['logits'] if isinstance(outs, torch.Tensor) else [
        f'feat{i}' for i in range(len(outs))]
    axes = {0: 'batch', 2: 'height', 3: 'width'} if dynamic_hw else {0: 'batch'}
    with export_formulation(model, dynamic_hw), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')   # tracer warnings about shape-dependent Python
        torch.onnx.export(model, (x, ), path, dynamo=False, opset_version=opset,
                          input_names=['input'], output_names=names,
                          dynamic_axes={'input': axes, **{n: {0: 'batch'} for n in names}})
    return names


def onnxruntime_session(path: str, threads: Optional[int] = None):
    """An onnxruntime CPU session for ``path`` (``threads``: intra-op threads)."""
    import onnxruntime as ort
    if not osp.exists(path):
        raise FileNotFoundError(f'{path} does not exist; export it first.')
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(path, opts, providers=['CPUExecutionProvider'])


def verify_onnx(path: str, model: nn.Module, shapes: Sequence[Tuple[int, int, int, int]],
                threads: Optional[int] = None) -> Dict[Tuple[int, ...], float]:
    """Run the file with onnxruntime and ``model`` with PyTorch on fresh random inputs of
    each shape; the largest ``||onnx - torch|| / ||torch||`` over the outputs, per shape."""
    session = onnxruntime_session(path, threads)
    errors = {}
    for shape in shapes:
        x = torch.randn(*shape)
        got = session.run(None, {'input': x.numpy()})
        with torch.no_grad():
            want = model(x.to(_device_of(model)))
        want = want if isinstance(want, (tuple, list)) else [want]
        if len(got) != len(want):
            raise RuntimeError(f'{path}: {len(got)} outputs, PyTorch gives {len(want)}.')
        errors[tuple(shape)] = max(relative_error(g, t.cpu().numpy())
                                   for g, t in zip(got, want))
    return errors


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """``||got - want|| / ||want||``, the measure every ONNX check here reports."""
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))
