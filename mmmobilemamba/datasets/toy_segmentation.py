"""A tiny ADE20K look-alike, so the segmentation configs can train and test on CPU in minutes.

Layout and label convention are ADE20K's (``ADEChallengeData2016/images/{training,validation}
/*.jpg``, ``annotations/.../*.png``; 0 = "other", ignored through ``reduce_zero_label=True``,
classes 1..N). The N classes are ADE20K's first N, so mmseg's ``ADE20KDataset`` with
``metainfo=dict(classes=TOY_CLASSES[:N])`` keeps every id. Each class has its own colour and
texture and fills big regions, so even a stride-64 decoder learns it in a few dozen iterations.

    python -m mmmobilemamba.datasets.toy_segmentation data/toy/ade
"""
import argparse
import os
import os.path as osp
from typing import Tuple

import numpy as np
from PIL import Image

# ADE20K's first classes (label values 1, 2, ...), as named in mmseg's ADE20KDataset.
TOY_CLASSES: Tuple[str, ...] = ('wall', 'building', 'sky', 'floor', 'tree', 'ceiling')
# One far-apart RGB colour per class; "other" is dark grey noise.
CLASS_COLORS = np.array([(220, 40, 40), (40, 200, 40), (40, 80, 230), (230, 210, 40),
                         (200, 40, 220), (40, 210, 220)], dtype=np.float32)
OTHER_COLOR = (70, 70, 70)
SPLITS = {'training': 'train', 'validation': 'val'}


def _paint(img: np.ndarray, label: np.ndarray, mask: np.ndarray, cls: int,
           rng: np.random.Generator) -> None:
    """Fill ``mask`` with class ``cls`` (1-based): its colour, light noise and stripes."""
    h, w = mask.shape
    stripes = 25.0 * (((np.arange(w) // (2 + cls)) % 2)[None, :] - 0.5) * np.ones((h, 1))
    noise = rng.normal(0, 8, size=(h, w, 3))
    colour = CLASS_COLORS[cls - 1][None, None] + noise + stripes[..., None]
    img[mask] = colour[mask]
    label[mask] = cls


def make_toy_sample(size: int, num_classes: int,
                    rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """One (RGB uint8 image, uint8 ADE label map): 2-3 horizontal bands of random classes,
    one big rectangle or ellipse of another class and an "other" (label 0) patch."""
    img = np.empty((size, size, 3), np.float32)
    img[:] = OTHER_COLOR
    img += rng.normal(0, 12, size=img.shape)
    label = np.zeros((size, size), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    classes = rng.permutation(num_classes) + 1
    num_bands = int(rng.integers(2, 4)) if num_classes > 2 else 2
    cuts = np.sort(rng.uniform(0.25, 0.75, num_bands - 1)) * size
    edges = [0, *cuts, size]
    for i in range(num_bands):
        _paint(img, label, (yy >= edges[i]) & (yy < edges[i + 1]), classes[i % num_classes], rng)
    # a big foreground shape of a class not used by the first band
    cls = classes[num_bands % num_classes]
    cy, cx = rng.uniform(0.3, 0.7, 2) * size
    ry, rx = rng.uniform(0.15, 0.3, 2) * size
    if rng.random() < 0.5:
        shape = (np.abs(yy - cy) < ry) & (np.abs(xx - cx) < rx)
    else:
        shape = ((yy - cy) / ry)**2 + ((xx - cx) / rx)**2 < 1
    _paint(img, label, shape, cls, rng)
    # an unlabelled corner patch, ignored in training and evaluation
    side = int(size * rng.uniform(0.1, 0.25))
    oy, ox = rng.integers(0, size - side, 2)
    img[oy:oy + side, ox:ox + side] = OTHER_COLOR + rng.normal(0, 12, size=(side, side, 3))
    label[oy:oy + side, ox:ox + side] = 0
    return np.clip(img, 0, 255).astype(np.uint8), label


def make_toy_ade(root: str, num_train: int = 32, num_val: int = 8, size: int = 128,
                 num_classes: int = 4, seed: int = 0) -> str:
    """Write a toy ADE20K under ``root``; return its ``ADEChallengeData2016`` folder."""
    if not 1 <= num_classes <= len(TOY_CLASSES):
        raise ValueError(f'num_classes must be in [1, {len(TOY_CLASSES)}], got {num_classes}.')
    if size < 32:
        raise ValueError(f'size must be at least 32 (MobileMamba needs 32x32), got {size}.')
    rng = np.random.default_rng(seed)
    data_root = osp.join(root, 'ADEChallengeData2016')
    for split, count in (('training', num_train), ('validation', num_val)):
        img_dir = osp.join(data_root, 'images', split)
        ann_dir = osp.join(data_root, 'annotations', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(count):
            name = f'ADE_{SPLITS[split]}_{i + 1:08d}'
            img, label = make_toy_sample(size, num_classes, rng)
            Image.fromarray(img).save(osp.join(img_dir, name + '.jpg'), quality=95)
            Image.fromarray(label).save(osp.join(ann_dir, name + '.png'))
    return data_root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='output folder (ADEChallengeData2016/ is created in it)')
    parser.add_argument('--num-train', type=int, default=32)
    parser.add_argument('--num-val', type=int, default=8)
    parser.add_argument('--size', type=int, default=128, help='image side in pixels')
    parser.add_argument('--num-classes', type=int, default=4)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    data_root = make_toy_ade(args.root, args.num_train, args.num_val, args.size,
                             args.num_classes, args.seed)
    print(f'Toy ADE20K ({args.num_classes} classes: '
          f'{", ".join(TOY_CLASSES[:args.num_classes])}) written to {data_root}')


if __name__ == '__main__':
    main()
