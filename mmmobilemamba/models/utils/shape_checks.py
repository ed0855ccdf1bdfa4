"""Clear errors for the two wiring mistakes a MobileMamba config makes most often.

* **Strides.** MobileMamba's finest feature is at stride 16. Under mmdet's stock ``FPN``,
  Faster R-CNN, FCOS and friends still build and train, but their anchors, points and RoI
  pooling assume strides from 4 or 8 up, so every box sits on the wrong grid and nothing
  complains. ``check_feature_strides`` runs once, on the backbone's first forward: it finds
  the detector that owns the backbone, measures the stride of every feature its heads
  receive from the real input and output sizes, and raises if the heads assume others.
* **Channels.** A neck or head with another variant's ``in_channels`` fails deep inside
  torch (``running_mean should contain 448 elements not 368``); ``check_in_channels``
  names the module, the input, both widths and where the widths of each variant are.

Both compare plain Python ints from ``.shape``, so torch.compile and ONNX export trace
through them unchanged; the stride check steps aside entirely while compiling or tracing.
"""
import math
import sys
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

STRIDE_DOC = 'docs/config_inheritance.md, section "Finer strides: Faster R-CNN, FCOS, UPerNet"'
WIDTH_DOC = ('MobileMamba.arch_zoo (embed_dims) and the table "Another backbone variant" in '
             'docs/config_inheritance.md')
_DONE = '_stride_check_done'    # set on the backbone once its detector has passed
_HOOKS = '_stride_check_hooks'  # the pending one-shot hooks

Stride = Tuple[float, float]  # (width, height), as mmdet's prior generators keep them


# ------------------------------------------------------------------------- channels
def backbone_widths() -> str:
    """``t2 [144, 272, 368], ...``: every variant's stage widths, for error messages."""
    from ..backbones import MobileMamba
    return ', '.join(f'{name} {arch["embed_dims"]}' for name, arch in MobileMamba.arch_zoo.items())


def check_in_channels(module: str, key: str, expected: Union[int, Sequence[int]],
                      actual: Sequence[int], input_name: str = 'input {}') -> None:
    """Raise if the ``actual`` channels of a module's inputs differ from ``expected``.

    ``expected`` is the configured value (an int, or a list with one entry per input),
    ``key`` the config key that sets it (``neck.in_channels``), ``input_name`` what the
    error calls input ``i`` (formatted with ``i``).
    """
    wanted = list(expected) if isinstance(expected, (list, tuple)) else [expected]
    if list(actual) == wanted:
        return
    wrong = '; '.join(f'{input_name.format(i)} has {a} channels, {key} says {e}'
                      for i, (a, e) in enumerate(zip(actual, wanted)) if a != e)
    fix = list(actual) if isinstance(expected, (list, tuple)) else actual[0]
    raise ValueError(
        f'{module}: {wrong}. Set {key}={fix}, the channels it receives (backbone '
        f'out_indices 0 and 1 give embed_dims[0], 2 and 3 embed_dims[1] and [2]). Widths '
        f'per variant ({WIDTH_DOC}): {backbone_widths()}.')


# -------------------------------------------------------------------------- strides
def measured_stride(size: int, out: int) -> int:
    """The power-of-two stride that turns ``size`` pixels into ``out``: the smallest ``s``
    with ``ceil(size / s) == out`` (how padded stride-2 convs round), else (an upsampled
    level of an odd-sized input) the power of two nearest to ``size / out``."""
    s = 1
    while s <= 2 * size:
        if -(-size // s) == out:
            return s
        s *= 2
    return 2 ** round(math.log2(size / out))


def level_agrees(size: int, out: int, stride: float) -> bool:
    """Can a feature of ``out`` pixels from a ``size``-pixel input be at ``stride``?

    Yes if the stride reproduces the size (rounded either way), or if the measured
    power-of-two stride is less than 2x off: SSD's anchor strides (107, 160, 320) are not
    powers of two, while a wrong pyramid is off by 2x or more.
    """
    if out in (math.floor(size / stride), math.ceil(size / stride)):
        return True
    return 0.5 < measured_stride(size, out) / stride < 2


def _pair(stride) -> Stride:
    w, h = stride if isinstance(stride, (tuple, list)) else (stride, stride)
    return float(w), float(h)


def head_strides(detector: nn.Module) -> Dict[str, Tuple[List[Stride], bool]]:
    """The strides each head of an mmdet detector assumes, by config key, each with whether
    it reads every feature level (dense heads) or only the first ones (RoI extractors)."""
    found = {}
    for name in ('rpn_head', 'bbox_head'):
        head = getattr(detector, name, None)
        gen = getattr(head, 'prior_generator', None)  # anchors (incl. SSD, YOLO) and points
        if getattr(gen, 'strides', None) is not None:
            found[f'{name}.prior_generator.strides'] = ([_pair(s) for s in gen.strides], True)
        elif getattr(head, 'strides', None) is not None:
            found[f'{name}.strides'] = ([_pair(s) for s in head.strides], True)
    roi_head = getattr(detector, 'roi_head', None)
    for name in ('bbox_roi_extractor', 'mask_roi_extractor'):
        ext = getattr(roi_head, name, None)
        stages = list(ext) if isinstance(ext, nn.ModuleList) else [ext]  # cascades: one each
        for i, e in enumerate(stages):
            if getattr(e, 'featmap_strides', None) is not None:
                key = f'roi_head.{name}' + (f'[{i}]' if len(stages) > 1 else '')
                found[key + '.featmap_strides'] = ([_pair(s) for s in e.featmap_strides], False)
    return found


def _fmt(stride: Stride) -> str:
    w, h = (int(v) if v == int(v) else v for v in stride)
    return str(w) if w == h else f'{w}x{h} (w x h)'


def stride_mismatches(input_size: Tuple[int, int], feat_sizes: Sequence[Tuple[int, int]],
                      assumed: Dict[str, Tuple[List[Stride], bool]]) -> List[str]:
    """The keys of ``assumed`` whose strides (or number of levels) the features disagree
    with; empty when all agree."""
    (ih, iw), wrong = input_size, []
    for key, (strides, every_level) in assumed.items():
        count_ok = len(strides) == len(feat_sizes) or (
            not every_level and len(strides) < len(feat_sizes))
        if not count_ok or not all(level_agrees(ih, h, sh) and level_agrees(iw, w, sw)
                                   for (sw, sh), (h, w) in zip(strides, feat_sizes)):
            wrong.append(key)
    return wrong


def stride_report(detector: nn.Module, source: str, input_size: Tuple[int, int],
                  feat_sizes: Sequence[Tuple[int, int]],
                  assumed: Dict[str, Tuple[List[Stride], bool]], wrong: Sequence[str]) -> str:
    """The error message: measured and assumed strides per level, and the fix."""
    (ih, iw) = input_size
    lines = [f'{type(detector).__name__}: the features reaching its heads are not at the '
             f'strides that {", ".join(wrong)} assume. Measured from a {ih}x{iw} input, '
             f'{source}:']
    for level in range(max([len(feat_sizes)] + [len(s) for s, _ in assumed.values()])):
        if level < len(feat_sizes):
            h, w = feat_sizes[level]
            real = _fmt((measured_stride(iw, w), measured_stride(ih, h)))
            line = f'  level {level}: features at stride {real} ({h}x{w})'
        else:
            line = f'  level {level}: no feature map'
        heads = [f'{key} {_fmt(s[level])}' for key, (s, _) in assumed.items() if level < len(s)]
        lines.append(line + '; ' + ', '.join(heads) if heads else line)
    lines.append(
        'Anchors, points and RoIs would sit on the wrong grid. MobileMamba\'s finest output '
        'is at stride 16 (out_indices 1, 2, 3 = strides 16, 32, 64), so a stock FPN starts '
        'at 16. Put levels below it with neck=dict(type=\'EfficientViTFPN\', '
        'num_extra_trans_convs=2, ...) for strides 4..64 (Faster/Mask R-CNN) or '
        'num_extra_trans_convs=1 for strides 8..128 (RetinaNet, FCOS), as '
        'docs/examples/faster-rcnn_mobilemamba_b1.py and docs/examples/fcos_mobilemamba_b1.py '
        f'do, or give the heads the measured strides. See {STRIDE_DOC}.')
    return '\n'.join(lines)


def find_owner(module: nn.Module, max_frames: int = 8) -> Optional[nn.Module]:
    """The module whose ``.backbone`` is ``module`` and that is calling it right now.

    nn.Module keeps no link to its parent, and only the detector knows its heads' strides,
    so this looks at the ``self`` of the few frames above the backbone's forward (an mmdet
    detector's ``extract_feat``). Returns None when the backbone is called on its own.
    """
    frame = sys._getframe(1)
    for _ in range(max_frames):
        if frame is None:
            return None
        owner = frame.f_locals.get('self')
        if (isinstance(owner, nn.Module) and owner is not module
                and owner._modules.get('backbone') is module):
            return owner
        frame = frame.f_back
    return None


def is_tracing() -> bool:
    """True inside torch.compile, TorchScript or an ONNX export: shape checks step aside."""
    return (torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting()
            or torch.onnx.is_in_onnx_export())


def check_feature_strides(backbone: nn.Module, inputs: torch.Tensor) -> None:
    """Arm a one-shot check of the strides of the features the owning detector's heads get.

    Call it first thing in the backbone's forward. It hooks the detector's neck (or, with
    none, the backbone stages it returns); when those produce their outputs, the hook
    measures each level's stride against ``inputs`` and raises ``ValueError`` on a
    disagreement with ``head_strides``. Once a detector has passed, or when the backbone
    has no detector (classifiers, segmentors, a bare backbone), later calls return at once.
    A failing model is checked again on its next forward.
    """
    if getattr(backbone, _DONE, False) or is_tracing():  # the flag first: every forward asks
        return
    for handle in getattr(backbone, _HOOKS, ()):  # armed by a forward that failed midway
        handle.remove()
    owner = find_owner(backbone)
    assumed = head_strides(owner) if owner is not None else {}
    if not assumed:
        setattr(backbone, _DONE, True)
        return
    input_size = tuple(inputs.shape[-2:])
    neck = getattr(owner, 'neck', None)

    def compare(feats: Sequence[torch.Tensor], source: str) -> None:
        for handle in getattr(backbone, _HOOKS):
            handle.remove()
        setattr(backbone, _HOOKS, ())
        sizes = [tuple(f.shape[-2:]) for f in feats]
        wrong = stride_mismatches(input_size, sizes, assumed)
        if wrong:
            raise ValueError(stride_report(owner, source, input_size, sizes, assumed, wrong))
        setattr(backbone, _DONE, True)

    if neck is not None:
        source = f'the outputs of the neck ({type(neck).__name__})'
        handles = [neck.register_forward_hook(lambda m, args, out: compare(
            [out] if isinstance(out, torch.Tensor) else out, source))]
    else:  # the heads read the backbone's outputs: hook the stages that produce them
        stages = [backbone.stages[i] for i in backbone.out_indices]
        outs: List[torch.Tensor] = []

        def record(m: nn.Module, args, out: torch.Tensor) -> None:
            outs.append(out)
            if m is stages[-1]:
                compare(outs, 'the backbone outputs (no neck)')
        handles = [stage.register_forward_hook(record) for stage in stages]
    setattr(backbone, _HOOKS, handles)
