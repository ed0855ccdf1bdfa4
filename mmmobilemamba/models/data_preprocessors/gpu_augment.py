"""The ImageNet recipe's training augmentation (RandomResizedCrop, RandomFlip, RandAugment,
RandomErasing) on batches of decoded images on the GPU.

mmpretrain's own transforms, built from the config's pipeline, draw every random parameter
(crop box, flip, the RandAugment ops and their magnitudes, the erased patch), so the
distributions are theirs by construction; only the pixel operations run here, on uint8
``(N, 3, H, W)`` tensors in BGR order, following mmcv's cv2 implementations (and Pillow's
bicubic resize for the crop). The CPU workers then only read file bytes.
"""
import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

# ----------------------------------------------------------- pixel operations (uint8 BGR)


def _to_uint8(x: Tensor, rounding: str) -> Tensor:
    """float -> uint8 as mmcv does it: 'round' (cv2's saturate_cast) or 'floor' (numpy's
    astype after np.clip)."""
    x = x.round() if rounding == 'round' else x.floor()
    return x.clamp_(0, 255).to(torch.uint8)


def on_device(values, device: torch.device, dtype: Optional[torch.dtype] = None) -> Tensor:
    """``values`` (a list or CPU tensor) on ``device`` without stalling the host: a plain
    copy to a CUDA device waits for all queued GPU work (the previous training step), so
    CUDA copies go through pinned memory, asynchronously."""
    values = torch.as_tensor(values, dtype=dtype)
    if torch.device(device).type != 'cuda':
        return values.to(device)
    return values.pin_memory().to(device, non_blocking=True)


def _per_image(values: Tensor, like: Tensor) -> Tensor:
    return on_device(values, like.device, torch.float32).view(-1, 1, 1, 1)


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
    shift = on_device(8 - bits, img.device, torch.uint8).view(-1, 1, 1, 1)
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


def warp_affine(img: Tensor, matrices: Tensor, pad_val: Sequence[float]) -> Tensor:
    """cv2.warpAffine(img, M, (w, h), flags=INTER_CUBIC, borderValue=pad_val) for forward
    2x3 matrices ``M`` (N, 2, 3) in pixel coordinates: bicubic (a = -0.75) with a constant
    border, emulated by padding with ``pad_val`` and sampling the padded image."""
    n, c, h, w = img.shape
    pad = 3  # bicubic reads two pixels on each side
    fill = on_device(pad_val, img.device, torch.float32).view(1, c, 1, 1)
    padded = fill.expand(n, c, h + 2 * pad, w + 2 * pad).clone()
    padded[..., pad:pad + h, pad:pad + w] = img
    full = torch.cat([matrices.double(), matrices.new_tensor([0., 0., 1.]).double().expand(
        n, 1, 3)], 1)
    inverse = on_device(torch.linalg.inv(full)[:, :2].float(), img.device)
    ys, xs = torch.meshgrid(torch.arange(h, device=img.device, dtype=torch.float32),
                            torch.arange(w, device=img.device, dtype=torch.float32),
                            indexing='ij')
    dst = torch.stack([xs, ys, torch.ones_like(xs)], -1).view(1, -1, 3)
    src = dst @ inverse.transpose(1, 2) + pad  # (N, H*W, 2), padded pixel coordinates
    size = on_device([w + 2 * pad - 1, h + 2 * pad - 1], img.device, torch.float32)
    grid = src / size * 2 - 1
    out = F.grid_sample(padded, grid.view(n, h, w, 2), mode='bicubic',
                        padding_mode='border', align_corners=True)
    return _to_uint8(out, 'round')


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


def apply_randaug_op(op, img: Tensor, values: Tensor) -> Tensor:
    """mmpretrain's op ``op`` on the images ``img`` with their drawn ``values``."""
    name = type(op).__name__
    h, w = img.shape[-2:]
    if name == 'SolarizeAdd':
        return solarize_add(img, values, op.thr)
    if name in ('Rotate', 'Shear', 'Translate'):
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
            offsets = values * (w if op.direction == 'horizontal' else h)
            matrices = translate_matrices(offsets, op.direction == 'horizontal')
        pad_val = op.pad_val if isinstance(op.pad_val, Sequence) else [op.pad_val] * 3
        return warp_affine(img, matrices, pad_val)
    return PIXEL_OPS[name](img, values)


# ----------------------------------------------------------------- crop, flip, erase


def resized_crop(img: Tensor, box: Tuple[int, int, int, int], size: Tuple[int, int],
                 rounded: bool = True) -> Tensor:
    """mmcv.imcrop + mmcv.imresize(backend='pillow', interpolation='bicubic') on one CHW
    image: torch's antialiased bicubic (Pillow's filter), in Pillow's two passes,
    horizontal then vertical, each rounded to uint8 (the last left to the caller, as float,
    when not ``rounded``: a batch rounds once)."""
    top, left, h, w = box
    crop = img[None, :, top:top + h, left:left + w].float()
    wide = F.interpolate(crop, size=(h, size[1]), mode='bicubic', antialias=True,
                         align_corners=False)
    wide = wide.round_().clamp_(0, 255)  # the uint8 values, kept as float
    out = F.interpolate(wide, size=size, mode='bicubic', antialias=True, align_corners=False)
    return _to_uint8(out, 'round')[0] if rounded else out[0]


def erase(img: Tensor, patches: List[Tuple[int, Tuple[int, int, int, int]]], mode: str,
          fill_color: Sequence[float], fill_std: Optional[Sequence[float]]) -> Tensor:
    """mmpretrain's RandomErasing fill, in place on the images ``i`` of ``patches`` =
    [(i, (top, left, h, w)), ...]: ``fill_color`` ('const'), uniform noise ('rand' without
    ``fill_std``) or normal noise around ``fill_color`` ('rand'), truncated as NumPy does."""
    dev = img.device
    mean = on_device(fill_color, dev, torch.float32).view(3, 1, 1)
    if fill_std is not None:
        std = on_device(fill_std, dev, torch.float32).view(3, 1, 1)
    for i, (top, left, h, w) in patches:
        if mode == 'const':
            patch = mean.to(torch.uint8).expand(3, h, w)
        elif fill_std is None:
            patch = torch.empty(3, h, w, device=dev).uniform_(0, 256).to(torch.uint8)
        else:
            noise = torch.randn(3, h, w, device=dev) * std + mean
            patch = noise.trunc().clamp(0, 255).to(torch.uint8)  # astype(int32), clip
        img[i, :, top:top + h, left:left + w] = patch
    return img


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
    (NumPy's global generator, as in the workers); the pixels change in batches per op.
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
            for op in getattr(t, 'transforms', []):
                if type(op).__name__ not in DRAWS:
                    raise ValueError(f'RandAugment op {type(op).__name__} has no GPU '
                                     f'version; ops with one: {sorted(DRAWS)}.')

    def __call__(self, images: List[Tensor]) -> Tensor:
        batch = None
        for t in self.transforms:
            name = type(t).__name__
            if name == 'RandomResizedCrop':
                size = tuple(t.scale[::-1])  # mmcv's (w, h) -> (h, w)
                boxes = [t.rand_crop_params(_Shape(*img.shape[1:])) for img in images]
                batch = _to_uint8(torch.stack([resized_crop(img, box, size, rounded=False)
                                               for img, box in zip(images, boxes)]), 'round')
            elif name == 'RandomFlip':
                batch = self._flip(t, batch)
            elif name == 'RandAugment':
                batch = self._randaugment(t, batch)
            else:
                h, w = batch.shape[-2:]
                patches = [(i, t.random_patch(h, w)) for i in range(len(batch))
                           if not t.random_disable()]
                batch = erase(batch, patches, t.mode, t.fill_color, t.fill_std)
        return batch

    @staticmethod
    def _flip(t, batch: Tensor) -> Tensor:
        directions = [t._choose_direction() for _ in range(len(batch))]
        for direction, dim in (('horizontal', -1), ('vertical', -2)):
            idx = [i for i, d in enumerate(directions) if d == direction]
            if idx:
                idx = on_device(idx, batch.device)
                batch[idx] = batch[idx].flip(dim)
        if any(d == 'diagonal' for d in directions):
            raise ValueError('GPU RandomFlip does not flip diagonally.')
        return batch

    @staticmethod
    def _randaugment(t, batch: Tensor) -> Tensor:
        chosen = [t.random_policy_indices() for _ in range(len(batch))]
        for slot in range(t.num_policies):
            drawn = [(i, c[slot], draw_randaug_op(t.transforms[c[slot]]))
                     for i, c in enumerate(chosen)]
            for k, op in enumerate(t.transforms):
                hits = [(i, v) for i, j, v in drawn if j == k and v is not None]
                if hits:
                    idx = on_device([i for i, _ in hits], batch.device)
                    values = torch.tensor([v for _, v in hits])
                    batch[idx] = apply_randaug_op(op, batch[idx], values)
        return batch
