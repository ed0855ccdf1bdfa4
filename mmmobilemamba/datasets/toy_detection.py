"""A tiny, learnable COCO-format detection / instance-segmentation dataset.

Real JPEG files of big, distinctly coloured shapes (red rectangles, green circles, blue
triangles) on noisy grey backgrounds, with boxes and polygon masks, in the standard layout
``annotations/instances_{train,val}2017.json`` + ``{train,val}2017/``. It exists so that
every detection config can be trained and evaluated end to end on a CPU in minutes.

    python -m mmmobilemamba.datasets.toy_detection data/toy/coco
"""
import argparse
import json
import os
import os.path as osp
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image, ImageDraw

CLASSES: Tuple[str, ...] = ('rectangle', 'circle', 'triangle')
COLORS: Tuple[Tuple[int, int, int], ...] = ((220, 40, 40), (40, 200, 60), (40, 80, 230))
CIRCLE_VERTICES = 32


def _polygon(cls: int, x0: float, y0: float, w: float, h: float,
             rng: np.random.Generator) -> List[Tuple[float, float]]:
    """Vertices of a shape of class ``cls`` filling the box (x0, y0, w, h)."""
    if cls == 0:
        return [(x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h)]
    if cls == 1:
        t = np.linspace(0, 2 * np.pi, CIRCLE_VERTICES, endpoint=False)
        return list(zip(x0 + w / 2 * (1 + np.cos(t)), y0 + h / 2 * (1 + np.sin(t))))
    apex = x0 + w * rng.uniform(0.3, 0.7)
    return [(apex, y0), (x0 + w, y0 + h), (x0, y0 + h)]


def _overlaps(box: Tuple[float, ...], boxes: List[Tuple[float, ...]]) -> bool:
    x, y, w, h = box
    return any(x < bx + bw and bx < x + w and y < by + bh and by < y + h
               for bx, by, bw, bh in boxes)


def _polygon_area(pts: List[Tuple[float, float]]) -> float:
    x, y = np.array(pts).T
    return float(0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _make_image(rng: np.random.Generator, size: int,
                max_objects: int) -> Tuple[Image.Image, List[dict]]:
    """One image with 1..max_objects non-overlapping shapes of 30-55% of the side."""
    base = rng.integers(90, 170)
    noise = rng.normal(0, 18, (size, size, 3))
    img = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    objects, boxes = [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(20):
            w, h = rng.uniform(0.3, 0.55, 2) * size
            x0, y0 = rng.uniform(0, size - w), rng.uniform(0, size - h)
            if not _overlaps((x0, y0, w, h), boxes):
                break
        else:
            continue
        cls = int(rng.integers(len(CLASSES)))
        pts = _polygon(cls, x0, y0, w, h, rng)
        color = tuple(int(c) for c in np.clip(np.array(COLORS[cls]) + rng.integers(-25, 26, 3),
                                              0, 255))
        draw.polygon(pts, fill=color)
        xs, ys = zip(*pts)
        bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
        boxes.append((x0, y0, w, h))
        objects.append(dict(category_id=cls + 1, bbox=[round(v, 2) for v in bbox],
                            area=round(_polygon_area(pts), 2), iscrowd=0,
                            segmentation=[[round(v, 2) for p in pts for v in p]]))
    return img, objects


def _write_split(root: str, split: str, num: int, size: int, rng: np.random.Generator,
                 max_objects: int) -> Dict:
    os.makedirs(osp.join(root, f'{split}2017'), exist_ok=True)
    images, annotations = [], []
    for i in range(num):
        img, objects = _make_image(rng, size, max_objects)
        name = f'{i:06d}.jpg'
        img.save(osp.join(root, f'{split}2017', name), quality=95)
        images.append(dict(id=i + 1, file_name=name, width=size, height=size))
        for obj in objects:
            annotations.append(dict(id=len(annotations) + 1, image_id=i + 1, **obj))
    coco = dict(images=images, annotations=annotations,
                categories=[dict(id=i + 1, name=n, supercategory='shape')
                            for i, n in enumerate(CLASSES)])
    with open(osp.join(root, 'annotations', f'instances_{split}2017.json'), 'w') as f:
        json.dump(coco, f)
    return coco


def make_toy_coco(root: str, num_train: int = 64, num_val: int = 16, size: int = 160,
                  seed: int = 0, max_objects: int = 3) -> str:
    """Write the toy dataset under ``root`` (COCO layout) and return ``root``.

    Deterministic for a given ``seed``; train and val use disjoint random streams.
    """
    if size < 64:
        raise ValueError(f'size must be >= 64 pixels (MobileMamba has stride 64), got {size}.')
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    train_rng, val_rng = (np.random.default_rng(s) for s in
                          np.random.SeedSequence(seed).spawn(2))
    _write_split(root, 'train', num_train, size, train_rng, max_objects)
    _write_split(root, 'val', num_val, size, val_rng, max_objects)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', nargs='?', default='data/toy/coco', help='output folder')
    parser.add_argument('--num-train', type=int, default=64)
    parser.add_argument('--num-val', type=int, default=16)
    parser.add_argument('--size', type=int, default=160, help='image side in pixels')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    make_toy_coco(args.root, args.num_train, args.num_val, args.size, args.seed)
    print(f'toy COCO ({", ".join(CLASSES)}): {args.num_train} train + {args.num_val} val '
          f'images of {args.size}x{args.size} written to {args.root}')


if __name__ == '__main__':
    main()
