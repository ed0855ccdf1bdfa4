"""The ImageNet recipe's training augmentation (RandomResizedCrop, RandomFlip, RandAugment,
RandomErasing) on batches of decoded images on the GPU.

mmpretrain's own transforms, built from the config's pipeline, draw every random parameter
(crop box, flip, the RandAugment ops and their magnitudes, the erased patch), so the
distributions are theirs by construction; only the pixel operations run here, on uint8
``(N, 3, H, W)`` tensors in BGR order, following mmcv's cv2 implementations (and Pillow's
bicubic resize for the crop). The CPU workers then only read file bytes.

The host's time per batch is the cost to keep small (it launches every kernel while the GPU
trains): the draws travel in one copy, and each op runs once per batch (or per RandAugment
slot, on the images that drew it), never once per image.
"""
import inspect
import math
import types
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmmobilemamba.utils.device_copy import on_device, on_device_packed
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


def sharpness(img: Tensor, magnitude: Tensor) -> Tensor:
    """mmcv.adjust_sharpness: blend with cv2.filter2D(img, SMOOTH) (reflect-101 border,
    rounded to uint8)."""
    kernel = on_device(SMOOTH, img.device).expand(3, 1, 3, 3)
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
    scale = on_device([2 / (w + 2 * pad - 1), 2 / (h + 2 * pad - 1)], img.device)
    grid = (src + pad) * scale - 1
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
    the warps)."""
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


def erase(img: Tensor, rects: Tensor, mode: str, fill_color: Tensor,
          fill_std: Optional[Tensor]) -> Tensor:
    """mmpretrain's RandomErasing fill of the rectangles ``rects`` (N, 4: top, left, h, w;
    h = 0 erases nothing) of the images ``img``: ``fill_color`` ('const'), uniform noise
    ('rand' without ``fill_std``) or normal noise around ``fill_color`` ('rand'),
    truncated as NumPy does. The rectangles become masks: one set of kernels for all."""
    n, c, h, w = img.shape
    top, left, ph, pw = rects.to(img.device).view(n, 4, 1, 1, 1).unbind(1)
    ys = torch.arange(h, device=img.device).view(1, 1, h, 1)
    xs = torch.arange(w, device=img.device).view(1, 1, 1, w)
    inside = (ys >= top) & (ys < top + ph) & (xs >= left) & (xs < left + pw)
    mean = fill_color.to(img.device, torch.float32).view(1, c, 1, 1)
    if mode == 'const':
        patch = mean.to(torch.uint8)
    elif fill_std is None:
        patch = torch.empty_like(img, dtype=torch.float32).uniform_(0, 256).to(torch.uint8)
    else:
        noise = torch.randn_like(img, dtype=torch.float32) * fill_std.to(
            img.device, torch.float32).view(1, c, 1, 1) + mean
        patch = noise.trunc_().clamp_(0, 255).to(torch.uint8)  # astype(int32), clip
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


class GPUTrainAugment:
    """The train pipeline's augmentation, from mmpretrain's transform configs, on a list of
    decoded uint8 BGR ``(3, H, W)`` images of any sizes; returns the ``(N, 3, S, S)`` batch.

    The first transform must be ``RandomResizedCrop`` (it gives every image the batch's
    size); then any of ``RandomFlip``, ``RandAugment`` and ``RandomErasing``, in the
    config's order. Each image draws its parameters from the transform objects themselves
    (NumPy's global generator, as in the workers), all of them first, on the host; they
    travel to the device in one copy, and the pixels then change in batches: one set of
    kernels per flip direction, erasing and crop pass, and per RandAugment op and slot on
    the images that drew it (the warps of a slot in one).
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

    def __call__(self, images: List[Tensor], rgb: bool = False) -> Tensor:
        """``images`` in BGR order, or RGB with ``rgb`` (nvJPEG's: the crop reorders them
        for free on CUDA); the batch is BGR."""
        crop = self.transforms[0]
        size = tuple(crop.scale[::-1])  # mmcv's (w, h) -> (h, w)
        boxes = [crop.rand_crop_params(_Shape(*img.shape[1:])) for img in images]
        plans = [self._draw(t, len(images), size) for t in self.transforms[1:]]
        moved = iter(on_device_packed([v for plan in plans for v in plan.values()],
                                      images[0].device))
        plans = [{k: next(moved) for k in plan} for plan in plans]
        if triton_resized_crop_available(images[0]):
            batch = resized_crops(images, boxes, size, swap_rb=rgb)
        else:
            batch = torch.stack([resized_crop(img.flip(0) if rgb else img, box, size)
                                 for img, box in zip(images, boxes)])
        for t, plan in zip(self.transforms[1:], plans):
            batch = self._apply(t, plan, batch)
        return batch

    # Each transform's draws, as CPU tensors (then moved to the device together) ...

    def _draw(self, t, n: int, size: Tuple[int, int]) -> Dict[str, Tensor]:
        name = type(t).__name__
        if name == 'RandomFlip':
            directions = [t._choose_direction() for _ in range(n)]
            if 'diagonal' in directions:
                raise ValueError('GPU RandomFlip does not flip diagonally.')
            return {d: torch.tensor([x == d for x in directions])
                    for d in ('horizontal', 'vertical') if d in directions}
        if name == 'RandomErasing':
            rects = [t.random_patch(*size) if not t.random_disable() else (0, 0, 0, 0)
                     for _ in range(n)]
            plan = dict(rects=torch.tensor(rects, dtype=torch.int64).view(n, 4),
                        fill_color=torch.tensor(t.fill_color, dtype=torch.float32))
            if t.fill_std is not None:
                plan['fill_std'] = torch.tensor(t.fill_std, dtype=torch.float32)
            return plan
        return self._draw_randaugment(t, n, size)

    @staticmethod
    def _draw_randaugment(t, n: int, size: Tuple[int, int]) -> Dict[str, Tensor]:
        """For each slot and op (the warps of a slot as one 'warp' group): the images that
        drew it and their values; the warps' inverse matrices and border values."""
        chosen = [t.random_policy_indices() for _ in range(n)]
        plan = {}
        for slot in range(t.num_policies):
            drawn = [(i, c[slot], draw_randaug_op(t.transforms[c[slot]]))
                     for i, c in enumerate(chosen)]
            warps = []
            for k, op in enumerate(t.transforms):
                hits = [(i, v) for i, j, v in drawn if j == k and v is not None]
                if not hits:
                    continue
                idx = torch.tensor([i for i, _ in hits])
                values = torch.tensor([v for _, v in hits], dtype=torch.float64)
                if type(op).__name__ in WARPS:
                    warps.append((idx, *warp_parameters(op, values, *size)))
                else:
                    plan[f'{slot}/{k}/idx'], plan[f'{slot}/{k}/values'] = idx, values.float()
            if warps:
                idx, inverse, fill = (torch.cat(parts) for parts in zip(*warps))
                plan.update({f'{slot}/warp/idx': idx, f'{slot}/warp/inverse': inverse,
                             f'{slot}/warp/fill': fill})
        return plan

    # ... and what they do to the batch

    def _apply(self, t, plan: Dict[str, Tensor], batch: Tensor) -> Tensor:
        name = type(t).__name__
        if name == 'RandomFlip':
            for direction, flipped in plan.items():
                dim = -1 if direction == 'horizontal' else -2
                batch = torch.where(flipped.view(-1, 1, 1, 1), batch.flip(dim), batch)
            return batch
        if name == 'RandomErasing':
            return erase(batch, plan['rects'], t.mode, plan['fill_color'],
                         plan.get('fill_std'))
        for group in dict.fromkeys(key.rsplit('/', 1)[0] for key in plan):  # slot order
            idx = plan[f'{group}/idx']
            images = batch.index_select(0, idx)
            op = group.split('/')[1]
            if op == 'warp':
                out = warp_affine(images, plan[f'{group}/inverse'], plan[f'{group}/fill'])
            else:
                out = apply_randaug_op(t.transforms[int(op)], images, plan[f'{group}/values'])
            batch = batch.index_copy(0, idx, out)
        return batch
