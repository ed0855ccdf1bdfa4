"""RandomResizedCrop's pixels for a whole batch in two Triton launches: crop each image of a
list (any sizes) and resize it with Pillow's antialiased bicubic filter (a = -0.5, the
support widened by the downscale factor), horizontal pass then vertical, each rounded to
uint8 in Pillow's own 22-bit fixed point, as ``mmcv.imresize(backend='pillow',
interpolation='bicubic')`` does: the pixels of Pillow's two-pass resampler. (Pillow 13's
``resize`` runs the vertical pass first for some shapes, e.g. when only the width grows;
each pass is still this one, but the order moves a few pixels by several levels.)

Why a kernel: torch resizes one image per call, so a batch of 128 crops of different boxes
costs ~900 launches and 8.0-9.0 ms of host time per batch on the H200 machines (4.1-4.4 ms
with this kernel, 0.7-1.2 ms when the images arrive as one buffer:
benchmarks/gpu_augment_speed.py, docs/benchmarks.md); here the boxes travel as one table and
every program finds its image in it. The first pass writes every image's intermediate into
one ragged uint8 buffer (no padding to the largest image); the second reads it and writes
the ``(N, 3, S_h, S_w)`` batch. Importing this module never needs a GPU.
"""
import os
from typing import List, Sequence, Tuple

import torch
from torch import Tensor

from mmmobilemamba.utils.device_copy import on_device

try:
    import triton
    import triton.language as tl
    HAS_TRITON = True
except ImportError:  # pragma: no cover - triton ships with CUDA builds of torch
    HAS_TRITON = False

INTERPRET = os.environ.get('TRITON_INTERPRET') == '1'
BLOCK_ROWS = 8


def triton_resized_crop_available(img: Tensor) -> bool:
    """True where :func:`resized_crops` runs on ``img``: CUDA (or ``TRITON_INTERPRET=1``)."""
    return HAS_TRITON and (img.is_cuda or INTERPRET)


if HAS_TRITON:
    META = tl.constexpr(11)  # values per image in a pass's table (_pass_kernel)

    @triton.jit
    def _pillow_window(out_idx, length, out_size):
        """Pillow's window for output pixels ``out_idx`` of an axis of ``length`` source
        pixels (float64, as Pillow computes it): the centre, the first and one-past-last
        source pixel, the inverse filter scale."""
        scale = length.to(tl.float64) / out_size
        stretch = tl.maximum(scale, 1.0)
        centre = (out_idx.to(tl.float64) + 0.5) * scale
        lo = tl.maximum((centre - 2.0 * stretch + 0.5).to(tl.int32), 0)
        hi = tl.minimum((centre + 2.0 * stretch + 0.5).to(tl.int32), length)
        return centre, lo, hi, 1.0 / stretch

    @triton.jit
    def _bicubic(src_idx, centre, inverse_stretch, valid):
        """Pillow's bicubic filter (a = -0.5) at source pixels ``src_idx``, 0 where not
        ``valid``."""
        t = tl.abs((src_idx.to(tl.float64) - centre + 0.5) * inverse_stretch)
        near = (1.5 * t - 2.5) * t * t + 1.0
        far = (((t - 5.0) * t + 8.0) * t - 4.0) * -0.5
        return tl.where(valid & (t < 2.0), tl.where(t < 1.0, near, far), 0.0)

    @triton.jit
    def _fixed_point(weight, total):
        """Pillow's 8-bit coefficients: normalised, in 22-bit fixed point, rounded away
        from zero at half."""
        k = weight / tl.where(total == 0.0, 1.0, total) * 4194304.0
        return tl.where(k < 0, k - 0.5, k + 0.5).to(tl.int32)

    @triton.jit
    def _to_uint8(acc):
        """Pillow's clip8: add half, shift out the 22 fraction bits, saturate."""
        return tl.minimum(tl.maximum((acc + 2097152) >> 22, 0), 255).to(tl.uint8)

    @triton.jit
    def _resample(src, rows, cols, out_idx, in_size, out_size, stride, col_stride, taps,
                  valid_out, valid_other, ALONG_ROWS: tl.constexpr, BLOCK_Y: tl.constexpr,
                  BLOCK_X: tl.constexpr):
        """One pass over a (BLOCK_Y, BLOCK_X) output tile: the ``out_idx`` output pixels
        of the resampled axis (along a row: columns; else rows) read ``in_size`` source
        pixels; the tile's other coordinates (``rows`` or ``cols``) stay."""
        centre, lo, hi, inverse_stretch = _pillow_window(out_idx, in_size, out_size)
        total = tl.zeros_like(centre)
        for k in range(0, taps):
            total += _bicubic(lo + k, centre, inverse_stretch, lo + k < hi)
        acc = tl.zeros((BLOCK_Y, BLOCK_X), tl.int32)
        for k in range(0, taps):
            i = lo + k
            weight = _fixed_point(_bicubic(i, centre, inverse_stretch, (i < hi) & valid_out),
                                  total)
            if ALONG_ROWS:
                ptr = src + rows.to(tl.int64)[:, None] * stride + (i * col_stride)[None, :]
                mask = valid_other[:, None] & ((i < hi) & valid_out)[None, :]
                weight = weight[None, :]
            else:
                ptr = src + i.to(tl.int64)[:, None] * stride + (cols * col_stride)[None, :]
                mask = ((i < hi) & valid_out)[:, None] & valid_other[None, :]
                weight = weight[:, None]
            acc += tl.load(ptr, mask=mask, other=0).to(tl.int32) * weight
        return acc

    @triton.jit
    def _pass_kernel(src, dst, meta, taps, ALONG_ROWS: tl.constexpr, BLOCK_X: tl.constexpr,
                     BLOCK_Y: tl.constexpr):
        """One resampling pass of every image and channel, along rows (widths change) or
        columns (heights change): program (image x 3 + channel, block of output rows).
        ``meta`` holds, per image: the source's offset, row, plane and column strides (CHW
        or the decoder's HWC), crop top, left, rows, cols; the output's offset, rows, cols
        (CHW)."""
        n, c = tl.program_id(0) // 3, tl.program_id(0) % 3
        m = meta + n * META
        out_rows, out_cols = tl.load(m + 9).to(tl.int32), tl.load(m + 10).to(tl.int32)
        y = tl.program_id(1) * BLOCK_Y + tl.arange(0, BLOCK_Y)
        x = tl.arange(0, BLOCK_X)
        if tl.program_id(1) * BLOCK_Y < out_rows:
            stride, col_stride = tl.load(m + 1), tl.load(m + 3)
            base = (src + tl.load(m) + c * tl.load(m + 2) + tl.load(m + 4) * stride
                    + tl.load(m + 5) * col_stride)
            in_rows, in_cols = tl.load(m + 6).to(tl.int32), tl.load(m + 7).to(tl.int32)
            if ALONG_ROWS:
                acc = _resample(base, y, x, x, in_cols, out_cols, stride, col_stride, taps,
                                x < out_cols, y < out_rows, True, BLOCK_Y, BLOCK_X)
            else:
                acc = _resample(base, y, x, y, in_rows, out_rows, stride, col_stride, taps,
                                y < out_rows, x < out_cols, False, BLOCK_Y, BLOCK_X)
            out = dst + tl.load(m + 8) + (c * out_rows + y[:, None]) * out_cols + x[None, :]
            tl.store(out, _to_uint8(acc), mask=(y < out_rows)[:, None] & (x < out_cols)[None, :])


def _taps(length: int, out_size: int) -> int:
    """Source pixels one output pixel can read: Pillow's window, 2 x support + 1."""
    return int(4 * max(length / out_size, 1.0)) + 2


def _one_buffer(images: Sequence[Tensor]) -> Tuple[Tensor, List[List[int]]]:
    """All images as one flat uint8 buffer and each one's offset and (plane, row, column)
    strides in it: their own storage when they are views of one (a batch from
    ``one_storage_collate``, copied to the device in one piece, CHW or the decoder's HWC
    viewed as CHW), else the concatenation of their CHW copies."""
    storage = images[0].untyped_storage()
    if all(img.untyped_storage().data_ptr() == storage.data_ptr() for img in images):
        flat = torch.empty(0, dtype=torch.uint8, device=images[0].device).set_(storage)
        return flat, [[img.storage_offset(), *img.stride()] for img in images]
    images = [img.contiguous() for img in images]
    layout, offset = [], 0
    for img in images:
        layout.append([offset, *img.stride()])
        offset += img.numel()
    return torch.cat([img.reshape(-1) for img in images]), layout


def resized_crops(images: Sequence[Tensor], boxes: Sequence[Tuple[int, int, int, int]],
                  size: Tuple[int, int]) -> Tensor:
    """Crop each uint8 ``(3, H, W)`` image of ``images`` to its box ``(top, left, h, w)``
    and resize it to ``size`` ``(h, w)`` with Pillow's bicubic resampler, horizontal pass
    first (its C ``ImagingResample``); a ``(N, 3, *size)`` uint8 batch. All images on one
    CUDA device (or any, under ``TRITON_INTERPRET=1``)."""
    if not images or not all(triton_resized_crop_available(img) for img in images):
        raise ValueError('resized_crops needs triton and CUDA images (TRITON_INTERPRET=1 '
                         'emulates on the CPU); use gpu_augment.resized_crop elsewhere.')
    out_h, out_w = size
    src, layouts = _one_buffer(images)
    passes: Tuple[List[List[int]], List[List[int]]] = ([], [])
    between = 0
    for n, (img, layout, (top, left, h, w)) in enumerate(zip(images, layouts, boxes)):
        _, height, width = img.shape
        if not (0 <= top and top + h <= height and 0 <= left and left + w <= width
                and h > 0 and w > 0):
            raise ValueError(f'crop box {(top, left, h, w)} is outside the {height}x{width} '
                             'image.')
        offset, plane, row, col = layout
        passes[0].append([offset, row, plane, col, top, left, h, w, between, h, out_w])
        passes[1].append([between, out_w, h * out_w, 1, 0, 0, h, out_w,
                          n * 3 * out_h * out_w, out_h, out_w])
        between += 3 * h * out_w
    device = images[0].device
    meta = on_device(passes, device, torch.int64)
    buffer = torch.empty(between, dtype=torch.uint8, device=device)
    dst = torch.empty(len(images), 3, out_h, out_w, dtype=torch.uint8, device=device)
    block_x = triton.next_power_of_2(out_w)  # every output row of both passes fits
    max_h = max(b[2] for b in boxes)
    _pass_kernel[(3 * len(images), triton.cdiv(max_h, BLOCK_ROWS))](
        src, buffer, meta[0], max(_taps(b[3], out_w) for b in boxes), ALONG_ROWS=True,
        BLOCK_X=block_x, BLOCK_Y=BLOCK_ROWS)
    _pass_kernel[(3 * len(images), triton.cdiv(out_h, BLOCK_ROWS))](
        buffer, dst, meta[1], max(_taps(b[2], out_h) for b in boxes), ALONG_ROWS=False,
        BLOCK_X=block_x, BLOCK_Y=BLOCK_ROWS)
    return dst
