"""A tiny, learnable ImageNet-format dataset, so that training and testing configs can be
exercised end to end on a CPU in seconds (no ImageNet download).

Each class is one pattern (disc, stripes, checkerboard, ...) in one colour, at a random
position, scale and phase on a noisy background, so that a small model separates the classes
after a few hundred images even under the recipe's heavy augmentation. The layout is the one
mmpretrain's ``ImageNet`` dataset reads with ``split='train'`` / ``split='val'``::

    root/train/<class>/<class>_0000.jpg ...   root/meta/train.txt   ("<class>/<file> <label>")
    root/val/<class>/<class>_0000.jpg ...     root/meta/val.txt
                                              root/meta/classes.txt (one name per line)

    python -m mmmobilemamba.datasets.toy_classification data/toy/imagenet
"""
import argparse
import os
import os.path as osp
from typing import List, Tuple

import numpy as np
from PIL import Image

PATTERNS = ('disc', 'hstripes', 'checker', 'cross', 'ring', 'vstripes', 'square', 'triangle')
COLORS = {
    'red': (230, 40, 40), 'green': (40, 200, 60), 'blue': (50, 80, 240),
    'yellow': (240, 220, 40), 'magenta': (220, 50, 220), 'cyan': (40, 220, 220),
    'orange': (250, 140, 20), 'white': (240, 240, 240)
}
MAX_CLASSES = len(PATTERNS) * len(COLORS)


def toy_class_names(num_classes: int) -> List[str]:
    """``<colour>_<pattern>`` names; the first eight classes differ in both colour and pattern."""
    if not 1 <= num_classes <= MAX_CLASSES:
        raise ValueError(f'num_classes must be in [1, {MAX_CLASSES}], got {num_classes}.')
    colors = list(COLORS)
    return [f'{colors[(i + i // len(PATTERNS)) % len(colors)]}_{PATTERNS[i % len(PATTERNS)]}'
            for i in range(num_classes)]


def _pattern_mask(pattern: str, size: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / size
    cy, cx = rng.uniform(0.35, 0.65, 2)
    r = rng.uniform(0.22, 0.36)
    period, phase = rng.uniform(0.12, 0.22), rng.uniform(0, 1)
    dy, dx = yy - cy, xx - cx
    if pattern == 'disc':
        return dy**2 + dx**2 < r**2
    if pattern == 'ring':
        return ((0.55 * r)**2 < dy**2 + dx**2) & (dy**2 + dx**2 < r**2)
    if pattern == 'square':
        return np.maximum(abs(dy), abs(dx)) < 0.85 * r
    if pattern == 'cross':
        return ((abs(dy) < 0.3 * r) & (abs(dx) < r)) | ((abs(dx) < 0.3 * r) & (abs(dy) < r))
    if pattern == 'triangle':
        return (abs(dy) < r) & (abs(dx) < (dy + r) / 2)
    if pattern == 'hstripes':
        return (yy / period + phase) % 1 < 0.5
    if pattern == 'vstripes':
        return (xx / period + phase) % 1 < 0.5
    if pattern == 'checker':
        return (np.floor(yy / period + phase) + np.floor(xx / period + phase)) % 2 == 0
    raise ValueError(f'Unknown pattern {pattern!r}.')


def _draw(name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    color, pattern = name.split('_')
    mask = _pattern_mask(pattern, size, rng)[..., None]
    fg = np.array(COLORS[color]) + rng.normal(0, 15, 3)
    bg = rng.uniform(20, 90, 3)
    img = np.where(mask, fg, bg) + rng.normal(0, 8, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_toy_imagenet(root: str,
                      num_classes: int = 4,
                      train_per_class: int = 32,
                      val_per_class: int = 8,
                      size: int = 64,
                      seed: int = 0) -> Tuple[str, ...]:
    """Write the toy dataset under ``root`` (deterministic for a given seed).

    Returns:
        The class names, in label order.
    """
    if size < 32:
        raise ValueError(f'size must be >= 32 (MobileMamba needs 32x32 inputs), got {size}.')
    names = toy_class_names(num_classes)
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'meta'), exist_ok=True)
    for split, per_class in (('train', train_per_class), ('val', val_per_class)):
        lines = []
        for label, name in enumerate(names):
            os.makedirs(osp.join(root, split, name), exist_ok=True)
            for i in range(per_class):
                rel = f'{name}/{name}_{i:04d}.jpg'
                Image.fromarray(_draw(name, size, rng)).save(osp.join(root, split, rel),
                                                             quality=95)
                lines.append(f'{rel} {label}\n')
        with open(osp.join(root, 'meta', f'{split}.txt'), 'w') as f:
            f.writelines(lines)
    with open(osp.join(root, 'meta', 'classes.txt'), 'w') as f:
        f.writelines(n + '\n' for n in names)
    return tuple(names)


def main() -> None:
    parser = argparse.ArgumentParser(description='Write a toy ImageNet-format dataset.')
    parser.add_argument('root', nargs='?', default='data/toy/imagenet', help='output folder')
    parser.add_argument('--num-classes', type=int, default=4)
    parser.add_argument('--train-per-class', type=int, default=32)
    parser.add_argument('--val-per-class', type=int, default=8)
    parser.add_argument('--size', type=int, default=64, help='image side in pixels')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    names = make_toy_imagenet(args.root, args.num_classes, args.train_per_class,
                              args.val_per_class, args.size, args.seed)
    print(f'wrote {len(names)} classes x ({args.train_per_class} train + {args.val_per_class} '
          f'val) images of {args.size}x{args.size} to {args.root}: {", ".join(names)}')


if __name__ == '__main__':
    main()
