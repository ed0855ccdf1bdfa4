"""The ImageNet recipe's training augmentation (RandomResizedCrop, RandomFlip, RandAugment,
RandomErasing) on batches of decoded images on the GPU.

mmpretrain's own transforms, built from the config's pipeline, draw every random parameter
(crop box, flip, the RandAugment ops and their magnitudes, the erased patch) in the
dataloader workers, image by image in the CPU pipeline's order, so the distributions are
theirs by construction; only the pixel operations run here, on uint8 ``(N, 3, H, W)``
tensors in BGR order, following mmcv's cv2 implementations (and Pillow's bicubic resize for
the crop).

The host's time per batch is the cost to keep small (it launches every kernel while the GPU
trains), and so is the GPU's, which the training step shares: after the crop, flips and
erasing run on the whole batch as masks, and each RandAugment op on a fixed number of
images (its slot's capacity: the images that drew it, filled up with others that it leaves
as they are), so the shapes depend only on the capacities and the whole part replays as one
CUDA graph per pair of them.
"""
import inspect
import math
import types
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mmmobilemamba.utils.cuda_capture import capture
from mmmobilemamba.utils.device_copy import on_device
from .resized_crop_triton import resized_crops, triton_resized_crop_available

# ----------------------------------------------------------- pixel operations (uint8 BGR)


def _to_uint8(x: Tensor, rounding: str) -> Tensor:
    """float -> uint8 as mmcv does it: 'round' (cv2's saturate_cast) or 'floor' (numpy's
    astype after np.clip)."""
    x = x.round() if rounding == 'round' else x.floor()
    return x.clamp_(0, 255).to(torch.uint8)


def _per_image(values: Tensor, like: Tensor) -> Tensor:
    return values.to(like.device, torch.float32).view(-1, 1, 1, 1)


def bgr_to_gray(img: Tensor) -> Tensor:
    """cv2.COLOR_BGR2GRAY on uint8: its fixed-point weights, (N, 1, H, W) uint8."""
    b, g, r = img.int().unbind(1)
    return ((b * 1868 + g * 9617 + r * 4899 + 8192) >> 14).to(torch.uint8).unsqueeze(1)


def _blend(img: Tensor, degenerate: Tensor, factor: Tensor) -> Tensor:
    """mmcv.adjust_brightness / adjust_contrast / adjust_sharpness: float32 blend, clip,
    truncate."""
    f = _per_image(factor, img)
    return _to_uint8(img.float() * f + degenerate.float() * (1 - f), 'floor')


def brightness(img: Tensor, magnitude: Tensor) -> Tensor:
    return _blend(img, torch.zeros_like(img), 1 + magnitude)


def contrast(img: Tensor, magnitude: Tensor) -> Tensor:
    gray = bgr_to_gray(img).double()
    mean = (gray.sum((1, 2, 3)) / gray[0].numel()).round()  # numpy's round: half to even
    return _blend(img, mean.view(-1, 1, 1, 1).expand_as(img), 1 + magnitude)


def color(img: Tensor, magnitude: Tensor) -> Tensor:
    """mmcv.adjust_color: cv2.addWeighted(img, alpha, gray, 1 - alpha) on uint8."""
    alpha = _per_image(1 + magnitude, img)
    return _to_uint8(img.float() * alpha + bgr_to_gray(img).float() * (1 - alpha), 'round')


SMOOTH = torch.tensor([[1., 1., 1.], [1., 5., 1.], [1., 1., 1.]]) / 13
_SMOOTH_ON: Dict[torch.device, Tensor] = {}  # copied once per device: graphs cannot copy


def sharpness(img: Tensor, magnitude: Tensor) -> Tensor:
    """mmcv.adjust_sharpness: blend with cv2.filter2D(img, SMOOTH) (reflect-101 border,
    rounded to uint8)."""
    if img.device not in _SMOOTH_ON:
        _SMOOTH_ON[img.device] = on_device(SMOOTH, img.device)
    kernel = _SMOOTH_ON[img.device].expand(3, 1, 3, 3)
    padded = F.pad(img.float(), (1, 1, 1, 1), mode='reflect')
    smooth = _to_uint8(F.conv2d(padded, kernel, groups=3), 'round')
    return _blend(img, smooth, 1 + magnitude)


def posterize(img: Tensor, bits: Tensor) -> Tensor:
    shift = (8 - bits.to(img.device)).to(torch.uint8).view(-1, 1, 1, 1)
    return (img >> shift) << shift


def solarize(img: Tensor, threshold: Tensor) -> Tensor:
    return torch.where(img < _per_image(threshold, img), img, 255 - img)


def solarize_add(img: Tensor, magnitude: Tensor, threshold: float = 128) -> Tensor:
    added = (img.float() + _per_image(magnitude, img)).clamp(max=255)
    return torch.where(img < threshold, added.to(torch.uint8), img)


def invert(img: Tensor, _: Optional[Tensor] = None) -> Tensor:
    return 255 - img


def _lookup(img: Tensor, lut: Tensor) -> Tensor:
    """Per image and channel lookup: ``lut`` is (N, 3, 256)."""
    n, c, h, w = img.shape
    return lut.gather(2, img.reshape(n, c, -1).long()).view(n, c, h, w)


def auto_contrast(img: Tensor, _: Optional[Tensor] = None) -> Tensor:
    """mmcv.auto_contrast (cutoff 0): each channel stretched from its min..max to 0..255."""
    low = img.amin((2, 3)).double()[..., None]
    high = img.amax((2, 3)).double()[..., None]
    scale = 255.0 / (high - low).clamp(min=1)
    values = torch.arange(256, device=img.device, dtype=torch.float64)
    lut = _to_uint8((values * scale - low * scale).clamp(0, 255), 'floor')
    keep = (low >= high)[..., 0, None, None]
    return torch.where(keep, img, _lookup(img, lut))


def equalize(img: Tensor, _: Optional[Tensor] = None) -> Tensor:
    """mmcv.imequalize: each channel's histogram equalised with Pillow's step rule."""
    n, c = img.shape[:2]
    flat = img.reshape(n * c, -1).long()
    hist = torch.zeros(n * c, 256, dtype=torch.long, device=img.device)
    hist.scatter_add_(1, flat, torch.ones_like(flat))
    last = hist.gather(1, flat.amax(1, keepdim=True))
    step = (flat.shape[1] - last) // 255
    lut = (hist.cumsum(1) + step // 2) // step.clamp(min=1)
    lut = torch.cat([torch.zeros_like(lut[:, :1]), lut[:, :-1]], 1).clamp(max=255)
    out = _lookup(img, lut.view(n, c, 256).to(torch.uint8))
    return torch.where((step == 0).view(n, c, 1, 1), img, out)


def warp_affine(img: Tensor, inverse: Tensor, fill: Tensor) -> Tensor:
    """cv2.warpAffine(img, M, (w, h), flags=INTER_CUBIC, borderValue=fill) given the
    inverse 2x3 matrices ``inverse`` (N, 2, 3) of ``M`` in pixel coordinates and per-image
    border values ``fill`` (N, 3): bicubic (a = -0.75) with a constant border, emulated by
    padding with ``fill`` and sampling the padded image."""
    n, c, h, w = img.shape
    pad = 3  # bicubic reads two pixels on each side
    inverse, fill = inverse.to(img.device, torch.float32), fill.to(img.device, torch.float32)
    padded = fill.view(n, c, 1, 1).expand(n, c, h + 2 * pad, w + 2 * pad).clone()
    padded[..., pad:pad + h, pad:pad + w] = img
    ys, xs = torch.meshgrid(torch.arange(h, device=img.device, dtype=torch.float32),
                            torch.arange(w, device=img.device, dtype=torch.float32),
                            indexing='ij')
    dst = torch.stack([xs, ys, torch.ones_like(xs)], -1).view(1, -1, 3)
    src = dst @ inverse.transpose(1, 2)  # (N, H*W, 2), source pixel coordinates
    # padded pixel coordinates -> grid_sample's [-1, 1] (align_corners)
    grid = torch.stack([(src[..., 0] + pad) * (2 / (w + 2 * pad - 1)) - 1,
                        (src[..., 1] + pad) * (2 / (h + 2 * pad - 1)) - 1], -1)
    out = F.grid_sample(padded, grid.view(n, h, w, 2), mode='bicubic',
                        padding_mode='border', align_corners=True)
    return _to_uint8(out, 'round')


def invert_affine(m: Tensor) -> Tensor:
    """The inverse of each forward 2x3 affine matrix in ``m`` (N, 2, 3), in closed form."""
    a, b, c = m[:, 0].unbind(1)
    d, e, f = m[:, 1].unbind(1)
    det = a * e - b * d
    rows = [torch.stack([e, -b, b * f - c * e], 1), torch.stack([-d, a, c * d - a * f], 1)]
    return torch.stack(rows, 1) / det.view(-1, 1, 1)


def rotate_matrices(angle: Tensor, h: int, w: int) -> Tensor:
    """mmcv.imrotate's matrix: cv2.getRotationMatrix2D(centre, -angle, 1)."""
    theta = torch.deg2rad(-angle.double())
    a, b = theta.cos(), theta.sin()
    cx, cy = (w - 1) * 0.5, (h - 1) * 0.5
    rows = [torch.stack([a, b, (1 - a) * cx - b * cy], -1),
            torch.stack([-b, a, b * cx + (1 - a) * cy], -1)]
    return torch.stack(rows, 1)


def shear_matrices(magnitude: Tensor, horizontal: bool) -> Tensor:
    m = torch.zeros(len(magnitude), 2, 3, dtype=torch.float64)
    m[:, 0, 0] = m[:, 1, 1] = 1
    m[:, 0 if horizontal else 1, 1 if horizontal else 0] = magnitude.double()
    return m


def translate_matrices(offset: Tensor, horizontal: bool) -> Tensor:
    m = torch.zeros(len(offset), 2, 3, dtype=torch.float64)
    m[:, 0, 0] = m[:, 1, 1] = 1
    m[:, 0 if horizontal else 1, 2] = offset.double()
    return m


# ------------------------------------------- RandAugment: mmpretrain's ops, drawn by them


def _magnitude(op, fixed: str = 'magnitude') -> float:
    """The op's fixed parameter if set, else its random magnitude (mmpretrain's rule)."""
    value = getattr(op, fixed)
    return value if value is not None else op.random_magnitude()


def _signed_magnitude(op, fixed: str = 'magnitude') -> float:
    return op.random_negative(_magnitude(op, fixed))


# How each mmpretrain RandAugment op draws its parameter (None: it has none) ...
DRAWS: Dict[str, Optional[Callable]] = {
    'AutoContrast': None, 'Equalize': None, 'Invert': None,
    'Posterize': lambda op: math.ceil(_magnitude(op, 'bits')),
    'Solarize': lambda op: _magnitude(op, 'thr'),
    'SolarizeAdd': _magnitude,
    'ColorTransform': _signed_magnitude, 'Contrast': _signed_magnitude,
    'Brightness': _signed_magnitude, 'Sharpness': _signed_magnitude,
    'Rotate': lambda op: _signed_magnitude(op, 'angle'),
    'Shear': _signed_magnitude, 'Translate': _signed_magnitude,
}
# ... and what it does to the pixels (the warps and SolarizeAdd: apply_randaug_op)
PIXEL_OPS: Dict[str, Callable] = {
    'AutoContrast': auto_contrast, 'Equalize': equalize, 'Invert': invert,
    'Posterize': posterize, 'Solarize': solarize, 'ColorTransform': color,
    'Contrast': contrast, 'Brightness': brightness, 'Sharpness': sharpness,
}


def draw_randaug_op(op) -> Optional[float]:
    """The parameter that mmpretrain's RandAugment op ``op`` would use on an image, or None
    when it skips the image (its ``prob``). Same calls, in the same order, as its
    ``transform``."""
    if op.random_disable():
        return None
    draw = DRAWS[type(op).__name__]
    return 0.0 if draw is None else float(draw(op))


WARPS = ('Rotate', 'Shear', 'Translate')


def warp_parameters(op, values: Tensor, h: int, w: int) -> Tuple[Tensor, Tensor]:
    """The inverse matrices (N, 2, 3) and border values (N, 3) with which the warp
    ``op`` (Rotate, Shear or Translate) moves ``h`` x ``w`` images by their drawn
    ``values`` (CPU)."""
    name = type(op).__name__
    if op.interpolation != 'bicubic':
        raise ValueError(f'GPU {name} implements bicubic interpolation, the recipe\'s; '
                         f'got {op.interpolation!r}.')
    if name == 'Rotate':
        if op.center is not None or op.scale != 1:
            raise ValueError('GPU Rotate implements the centre rotation at scale 1.')
        matrices = rotate_matrices(values, h, w)
    elif name == 'Shear':
        matrices = shear_matrices(values, op.direction == 'horizontal')
    else:
        offsets = values.double() * (w if op.direction == 'horizontal' else h)
        matrices = translate_matrices(offsets, op.direction == 'horizontal')
    pad_val = op.pad_val if isinstance(op.pad_val, Sequence) else [op.pad_val] * 3
    fill = torch.tensor(pad_val, dtype=torch.float32).expand(len(values), 3)
    return invert_affine(matrices).float(), fill


def apply_randaug_op(op, img: Tensor, values: Tensor) -> Tensor:
    """mmpretrain's op ``op`` on the images ``img`` with their drawn ``values`` (CPU for
    the warps; the other ops take them on ``img``'s device without a copy)."""
    name = type(op).__name__
    if name in WARPS:
        inverse, fill = warp_parameters(op, values, *img.shape[-2:])
        return warp_affine(img, on_device(inverse, img.device), on_device(fill, img.device))
    values = on_device(values, img.device, torch.float32)
    if name == 'SolarizeAdd':
        return solarize_add(img, values, op.thr)
    return PIXEL_OPS[name](img, values)


# ----------------------------------------------------------------- crop, flip, erase


def resized_crop(img: Tensor, box: Tuple[int, int, int, int], size: Tuple[int, int]
                 ) -> Tensor:
    """mmcv.imcrop + mmcv.imresize(backend='pillow', interpolation='bicubic') on one CHW
    uint8 image: torch's antialiased bicubic (Pillow's filter) in Pillow's two passes,
    horizontal then vertical, each rounded to uint8. The CPU path of the batch's crop
    (:func:`resized_crops` runs on CUDA, in Pillow's fixed point)."""
    top, left, h, w = box
    out = img[None, :, top:top + h, left:left + w].float()
    for shape in ((h, size[1]), size):
        out = F.interpolate(out, size=shape, mode='bicubic', antialias=True,
                            align_corners=False).round_().clamp_(0, 255)
    return out[0].to(torch.uint8)


def erase_noise(like: Tensor, normal: bool,
                generator: Optional[torch.Generator] = None) -> Tensor:
    """RandomErasing's 'rand' noise for a batch like ``like``: standard normal (with a
    ``fill_std``) or uniform in [0, 256), float32."""
    noise = torch.empty_like(like, dtype=torch.float32)
    return noise.normal_(generator=generator) if normal else noise.uniform_(
        0, 256, generator=generator)


def erase(img: Tensor, rects: Tensor, mode: str, fill_color: Tensor,
          fill_std: Optional[Tensor], noise: Optional[Tensor] = None) -> Tensor:
    """mmpretrain's RandomErasing fill of the rectangles ``rects`` (N, 4: top, left, h, w;
    h = 0 erases nothing) of the images ``img``: ``fill_color`` ('const'), uniform noise
    ('rand' without ``fill_std``) or normal noise around ``fill_color`` ('rand'), truncated
    as NumPy does; the noise is ``noise`` (:func:`erase_noise`) or drawn here. The
    rectangles become masks: one set of kernels for all."""
    n, c, h, w = img.shape
    top, left, ph, pw = rects.to(img.device).view(n, 4, 1, 1, 1).unbind(1)
    ys = torch.arange(h, device=img.device).view(1, 1, h, 1)
    xs = torch.arange(w, device=img.device).view(1, 1, 1, w)
    inside = (ys >= top) & (ys < top + ph) & (xs >= left) & (xs < left + pw)
    mean = fill_color.to(img.device, torch.float32).view(1, c, 1, 1)
    if mode == 'const':
        patch = mean.to(torch.uint8)
    else:
        noise = erase_noise(img, fill_std is not None) if noise is None else noise
        if fill_std is None:
            patch = noise.to(torch.uint8)
        else:
            std = fill_std.to(img.device, torch.float32).view(1, c, 1, 1)
            patch = (noise * std + mean).trunc_().clamp_(0, 255).to(torch.uint8)
    return torch.where(inside, patch, img)


def _bind_random_methods(transform) -> None:
    """Bind ``transform``'s ``@cache_randomness`` methods (mmcv) to it directly. The
    decorator copies itself at every attribute access to serve its caching context, which
    these private instances never enter; that copy cost ~7 us per draw, ~6 ms of host time
    per batch of 128. The same functions run, in the same order."""
    from mmcv.transforms.utils import cache_randomness
    for name in getattr(transform, '_methods_with_randomness', ()):
        method = inspect.getattr_static(transform, name)
        if isinstance(method, cache_randomness):
            setattr(transform, name, types.MethodType(method.func, transform))


class _Shape:
    """What mmpretrain's parameter samplers read of an image: its shape."""

    def __init__(self, h: int, w: int) -> None:
        self.shape = (h, w, 3)


def capacity(count: int, n: int) -> int:
    """How many images an op's group of ``count`` (of ``n``) runs on: the next power of two,
    at least 8 and at most ``n``, so that few shapes (CUDA graphs) serve all batches."""
    return min(n, max(8, 1 << max(count - 1, 0).bit_length()))


def group_index(member: np.ndarray) -> Tensor:
    """The images of each group (an op's, in one RandAugment slot; ``member`` is a
    ``(groups, n)`` bool matrix) as one row of a ``(groups, capacity)`` int64 table: the
    group's images in order, then other images in order as fill, written ``-1 - index``
    (gathered and put back unchanged). No row repeats an image, so putting a row's images
    back is deterministic."""
    n = member.shape[1]
    cap = capacity(int(member.sum(1).max(initial=0)), n)
    order = np.argsort(~member, axis=1, kind='stable')[:, :cap]  # members first
    return torch.from_numpy(np.where(np.take_along_axis(member, order, 1), order, -1 - order))


def _apply_to_group(batch: Tensor, rows: Tensor, fn: Callable[[Tensor, Tensor], Tensor]
                    ) -> Tensor:
    """``fn(images, positions)`` on the images of one :func:`group_index` row (members and
    fill), its result kept for the members and put back in place."""
    member = rows >= 0
    positions = torch.where(member, rows, -1 - rows)
    images = batch.index_select(0, positions)
    kept = torch.where(member.view(-1, 1, 1, 1), fn(images, positions), images)
    return batch.index_copy_(0, positions, kept)


IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # the inverse matrix of an image not warped
WIDTHS = {'RandomResizedCrop': 4, 'RandomFlip': 2, 'RandomErasing': 4}
SLOT = 11  # a RandAugment slot: op index (-1: none), value, inverse matrix (6), fill (3)


class GPUTrainAugment:
    """The train pipeline's augmentation, from mmpretrain's transform configs: :meth:`draw`
    draws one image's parameters (in a dataloader worker), :meth:`__call__` applies a
    batch's to its decoded uint8 BGR ``(3, H, W)`` images of any sizes and returns the
    ``(N, 3, S, S)`` batch.

    The first transform must be ``RandomResizedCrop`` (it gives every image the batch's
    size); then any of ``RandomFlip``, ``RandAugment`` and ``RandomErasing``, in the
    config's order. Each image draws from the transform objects themselves, with the calls
    and in the order of mmpretrain's CPU pipeline (NumPy's global generator of the
    worker), into one float64 row (``width`` values). The crop then runs as one Triton
    kernel per pass; flips and erasing run on the whole batch, each RandAugment op on its
    slot's group (:func:`group_index`), as one CUDA graph on CUDA (captured at the second
    batch of a shape and pair of capacities).
    """

    SUPPORTED = ('RandomResizedCrop', 'RandomFlip', 'RandAugment', 'RandomErasing')

    def __init__(self, transforms: Sequence[dict]) -> None:
        from mmengine.registry import DefaultScope
        from mmpretrain.registry import TRANSFORMS
        names = [t['type'] for t in transforms]
        if not names or names[0] != 'RandomResizedCrop' or any(
                n not in self.SUPPORTED for n in names):
            raise ValueError(f'GPU augmentation runs {self.SUPPORTED} (RandomResizedCrop '
                             f'first), got {names}. Keep this pipeline on the CPU.')
        with DefaultScope.overwrite_default_scope('mmpretrain'):  # whatever scope builds us
            self.transforms = [TRANSFORMS.build(dict(t)) for t in transforms]
        for t in self.transforms:
            _bind_random_methods(t)
            for op in getattr(t, 'transforms', []):
                if type(op).__name__ not in DRAWS:
                    raise ValueError(f'RandAugment op {type(op).__name__} has no GPU '
                                     f'version; ops with one: {sorted(DRAWS)}.')
                _bind_random_methods(op)
        self.size = tuple(self.transforms[0].scale[::-1])  # mmcv's (w, h) -> (h, w)
        self.width = sum(WIDTHS.get(type(t).__name__, 0) + SLOT * getattr(t, 'num_policies', 0)
                         for t in self.transforms)
        # per RandAugment slot: its op-index column, its pixel ops and its warps
        self._slots: List[Tuple[int, List[int], List[int]]] = []
        col = 0  # in the draws after the crop's
        for t in self.transforms[1:]:
            for _ in range(getattr(t, 'num_policies', 0)):
                kinds = [type(op).__name__ in WARPS for op in t.transforms]
                self._slots.append((col, [k for k, w in enumerate(kinds) if not w],
                                    [k for k, w in enumerate(kinds) if w]))
                col += SLOT
            col += WIDTHS.get(type(t).__name__, 0)
        self._constants: Dict[torch.device, Dict[str, Tensor]] = {}
        self._graphs: Dict[tuple, '_Graphed'] = {}

    # ------------------------------------------------------- one image's draws (a worker)

    def draw(self, h: int, w: int) -> Tensor:
        """The parameters of one ``h`` x ``w`` image: a float64 row of ``width``."""
        row: List[float] = []
        for t in self.transforms:
            name = type(t).__name__
            if name == 'RandomResizedCrop':
                row += t.rand_crop_params(_Shape(h, w))
            elif name == 'RandomFlip':
                direction = t._choose_direction()
                if direction == 'diagonal':
                    raise ValueError('GPU RandomFlip does not flip diagonally.')
                row += [direction == 'horizontal', direction == 'vertical']
            elif name == 'RandomErasing':
                row += (t.random_patch(*self.size) if not t.random_disable()
                        else (0, 0, 0, 0))
            else:
                row += self._draw_randaugment(t)
        return torch.tensor(row, dtype=torch.float64)

    def _draw_randaugment(self, t) -> List[float]:
        """Per slot: the op drawn (-1 when it skips the image: its ``prob``), its value,
        and a warp's inverse matrix and border (the identity for the other ops)."""
        row: List[float] = []
        for k in t.random_policy_indices():
            op = t.transforms[k]
            value = draw_randaug_op(op)
            inverse, fill = IDENTITY, (0.0, 0.0, 0.0)
            if value is not None and type(op).__name__ in WARPS:
                matrix, border = warp_parameters(
                    op, torch.tensor([value], dtype=torch.float64), *self.size)
                inverse, fill = matrix.view(-1).tolist(), border[0].tolist()
            row += [-1 if value is None else int(k), value or 0.0, *inverse, *fill]
        return row

    # ---------------------------------------------------------- a batch's pixels (the GPU)

    def __call__(self, images: List[Tensor], params: Tensor,
                 generator: Optional[torch.Generator] = None) -> Tensor:
        """``images`` (BGR, on one device) with their ``params`` (N, ``width``), the
        :meth:`draw` rows, on the CPU; erasing's noise from ``generator`` (torch's default
        one without it)."""
        if params.shape != (len(images), self.width):
            raise ValueError(f'GPUTrainAugment: {len(images)} images need ({len(images)}, '
                             f'{self.width}) parameters, got {tuple(params.shape)}.')
        device = images[0].device
        boxes = params[:, :4].long().tolist()
        if triton_resized_crop_available(images[0]):
            batch = resized_crops(images, boxes, self.size)
        else:
            batch = torch.stack([resized_crop(img, box, self.size)
                                 for img, box in zip(images, boxes)])
        op_index, warp_index = (on_device(t, device) for t in self.groups(params[:, 4:]))
        params = on_device(params[:, 4:], device, torch.float32)
        noise = None
        for t in self.transforms:
            if type(t).__name__ == 'RandomErasing' and t.mode == 'rand':
                noise = erase_noise(batch, t.fill_std is not None, generator)
        if not batch.is_cuda:
            return self.apply(batch, params, noise, op_index, warp_index)
        key = (tuple(batch.shape), device, noise is None, op_index.shape, warp_index.shape)
        graphed = self._graphs.setdefault(key, _Graphed(self.apply))
        return graphed(batch, params, noise, op_index, warp_index)

    def groups(self, params: Tensor) -> Tuple[Tensor, Tensor]:
        """The images each RandAugment op takes, slot by slot, from the draws ``params``
        (after the crop's columns, CPU): the pixel ops' rows ``(slots x ops, capacity)``
        and the warps' ``(slots, capacity)`` (:func:`group_index`; one group for the
        warps of a slot, which run as one)."""
        pixel_groups, warp_groups = [], []
        for col, pixel_ops, warps in self._slots:
            drawn = params[:, col].numpy()
            pixel_groups.append(drawn[None, :] == np.array(pixel_ops)[:, None])
            warp_groups.append(np.isin(drawn, warps)[None, :])
        n = len(params)
        return (group_index(np.concatenate(pixel_groups or [np.zeros((0, n), bool)])),
                group_index(np.concatenate(warp_groups or [np.zeros((0, n), bool)])))

    def _on(self, device: torch.device) -> Dict[str, Tensor]:
        """The transforms' constants on ``device``, copied there once."""
        if device not in self._constants:
            found = {}
            for i, t in enumerate(self.transforms):
                if type(t).__name__ == 'RandomErasing':
                    found[f'{i}/fill_color'] = torch.tensor(t.fill_color, dtype=torch.float32)
                    if t.fill_std is not None:
                        found[f'{i}/fill_std'] = torch.tensor(t.fill_std, dtype=torch.float32)
            self._constants[device] = {k: on_device(v, device) for k, v in found.items()}
        return self._constants[device]

    def apply(self, batch: Tensor, params: Tensor, noise: Optional[Tensor], op_index: Tensor,
              warp_index: Tensor) -> Tensor:
        """Every transform after the crop on the cropped ``batch``, with the device
        ``params`` (N, ``width`` - 4, float32), erasing's ``noise`` and the RandAugment
        groups (:meth:`groups`): only device work, no host copies and no data-dependent
        shapes (CUDA graphs capture it)."""
        constants, col, slot = self._on(batch.device), 0, 0
        op_rows = iter(op_index)
        for i, t in enumerate(self.transforms[1:], 1):
            name = type(t).__name__
            if name == 'RandomFlip':
                for dim in (-1, -2):  # horizontal, vertical
                    flipped = params[:, col].view(-1, 1, 1, 1) > 0
                    batch = torch.where(flipped, batch.flip(dim), batch)
                    col += 1
            elif name == 'RandomErasing':
                batch = erase(batch, params[:, col:col + 4].long(), t.mode,
                              constants[f'{i}/fill_color'], constants.get(f'{i}/fill_std'),
                              noise)
                col += 4
            else:
                batch = batch.clone()  # the groups write in place
                for _ in range(t.num_policies):
                    _, pixel_ops, warps = self._slots[slot]
                    self._apply_slot([t.transforms[k] for k in pixel_ops], batch,
                                     params[:, col:col + SLOT],
                                     [next(op_rows) for _ in pixel_ops],
                                     warp_index[slot] if warps else None)
                    col, slot = col + SLOT, slot + 1
        return batch

    @staticmethod
    def _apply_slot(pixel_ops: list, batch: Tensor, slot: Tensor, op_rows: List[Tensor],
                    warp_rows: Optional[Tensor]) -> None:
        """One RandAugment slot, in place: each of its pixel ops on its group; the warps
        (Rotate, Shear, Translate) as one on theirs, by each image's inverse matrix."""
        values = slot[:, 1]
        for op, rows in zip(pixel_ops, op_rows):
            _apply_to_group(batch, rows, lambda img, at, op=op: apply_randaug_op(
                op, img, values.index_select(0, at)))
        if warp_rows is not None:
            _apply_to_group(batch, warp_rows, lambda img, at: warp_affine(
                img, slot[:, 2:8].index_select(0, at).view(-1, 2, 3),
                slot[:, 8:11].index_select(0, at)))


class _Graphed:
    """``fn(*args)`` (device tensors of fixed shapes, or None): eager at the first call,
    captured as a CUDA graph at the second (on a stream of its own; other threads may use
    the GPU meanwhile), replayed after. Returns a fresh tensor each call."""

    def __init__(self, fn: Callable) -> None:
        self.fn, self.calls = fn, 0
        self.graph: Optional[torch.cuda.CUDAGraph] = None
        self.static: Tuple[Optional[Tensor], ...] = ()
        self.out: Optional[Tensor] = None

    def __call__(self, *args: Optional[Tensor]) -> Tensor:
        self.calls += 1
        if self.calls == 1:
            return self.fn(*args)
        device = args[0].device
        if self.graph is None:
            self.static = tuple(None if x is None else x.clone() for x in args)
            stream = torch.cuda.Stream(device)
            stream.wait_stream(torch.cuda.current_stream(device))
            self.graph = torch.cuda.CUDAGraph()
            with capture(self.graph, stream):
                self.out = self.fn(*self.static)
            torch.cuda.current_stream(device).wait_stream(stream)
        for static, x in zip(self.static, args):
            if static is not None:
                static.copy_(x)
        self.graph.replay()
        return self.out.clone()
