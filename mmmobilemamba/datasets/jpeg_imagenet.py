"""An ImageNet-like folder of JPEG photographs (ImageNet's typical size and file weight, random
content), for timing the data loading and training of a classification config
(tools/analysis/train_speed.py) without ImageNet."""
import io
import os
import os.path as osp
from multiprocessing import Pool

import numpy as np
from PIL import Image

NUM_CLASSES = 1000


def _write_jpeg(job) -> int:
    path, seed = job
    rng = np.random.default_rng(seed)
    w, h = int(rng.integers(400, 521)), int(rng.integers(300, 401))
    coarse = rng.uniform(0, 255, (h // 16 + 2, w // 16 + 2, 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), np.float32)
    img = np.clip(img + rng.normal(0, 11, img.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, 'JPEG', quality=90)
    with open(path, 'wb') as f:
        f.write(buf.getvalue())
    return len(buf.getvalue())


def make_jpeg_imagenet(root: str, images: int, seed: int = 0) -> float:
    """ImageNet's train layout (``train/<class>/*.JPEG`` + ``meta/train.txt``) of smooth
    noise photographs at ImageNet's typical size and JPEG weight; returns the mean KiB.
    Reused when ``meta/train.txt`` already lists ``images`` files."""
    ann = osp.join(root, 'meta', 'train.txt')
    if osp.exists(ann):
        with open(ann) as f:
            rels = [line.split()[0] for line in f]
        if len(rels) == images:
            sizes = [osp.getsize(osp.join(root, 'train', rel)) for rel in rels]
            return sum(sizes) / len(sizes) / 1024
    rels = [f'n{i % NUM_CLASSES:05d}/{i:07d}.JPEG' for i in range(images)]
    for c in range(min(images, NUM_CLASSES)):
        os.makedirs(osp.join(root, 'train', f'n{c:05d}'), exist_ok=True)
    jobs = [(osp.join(root, 'train', rel), seed * 1_000_003 + i) for i, rel in enumerate(rels)]
    with Pool(os.cpu_count()) as pool:
        sizes = pool.map(_write_jpeg, jobs, chunksize=64)
    os.makedirs(osp.dirname(ann), exist_ok=True)
    with open(ann, 'w') as f:
        f.writelines(f'{rel} {i % NUM_CLASSES}\n' for i, rel in enumerate(rels))
    return sum(sizes) / len(sizes) / 1024
