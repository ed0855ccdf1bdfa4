"""What one training batch of ``--gpu-augment`` costs, stage by stage, against decoding on the
CPU: the S6 recipe's batch (128 ImageNet-like JPEGs) decoded by nvJPEG, augmented
(RandomResizedCrop, flip, RandAugment, RandomErasing) and mixed (Mixup/CutMix) on the GPU.
For each stage: the host's time to return (what the training loop waits for) and the time
until the GPU has finished it; the CPU decoder's rate per core beside them.

    python benchmarks/gpu_augment_speed.py --data /tmp/jpeg [--batches 20] [--json out.json] \
        [--profile profile.txt]   # + torch.profiler tables of two preprocessor calls
    python benchmarks/gpu_augment_speed.py --draws-only   # any machine: the host's draws
"""
import argparse
import glob
import json
import os.path as osp
import time
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
from mmengine.config import Config

import mmmobilemamba  # noqa: F401  (registers our modules)
from mmmobilemamba.datasets.jpeg_imagenet import make_jpeg_imagenet
from mmmobilemamba.models.data_preprocessors import GPUTrainAugment, use_gpu_augment
from mmmobilemamba.models.data_preprocessors.gpu_augment_cls_data_preprocessor import \
    decode_images

CONFIG = 'configs/classification/mobilemamba_s6_8xb128_in1k.py'


def host_and_gpu_ms(fn: Callable[[], object], batches: int) -> Dict[str, float]:
    """Median ms per call: until ``fn`` returns, and until the GPU has finished it."""
    host, done = [], []
    for _ in range(batches + 3):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        t1 = time.perf_counter()
        torch.cuda.synchronize()
        host.append(t1 - t0)
        done.append(time.perf_counter() - t0)
    return dict(host_ms=1e3 * float(np.median(host[3:])),
                done_ms=1e3 * float(np.median(done[3:])))


def draws_ms(augment: GPUTrainAugment, batch: int, batches: int) -> float:
    """Median host ms to draw one batch's parameters (crop boxes for 375 x 500 images, then
    the other transforms'), the part of the augmentation that is Python on any machine."""
    from mmmobilemamba.models.data_preprocessors.gpu_augment import _Shape
    crop, size = augment.transforms[0], (224, 224)
    times = []
    for _ in range(batches + 3):
        t0 = time.perf_counter()
        [crop.rand_crop_params(_Shape(375, 500)) for _ in range(batch)]
        [augment._draw(t, batch, size) for t in augment.transforms[1:]]
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times[3:]))


def main(argv: Optional[List[str]] = None) -> List[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', help='JPEG folder (written if missing)')
    p.add_argument('--draws-only', action='store_true',
                   help="time only the host's parameter draws (no GPU needed)")
    p.add_argument('--images', type=int, default=6400)
    p.add_argument('--batch', type=int, default=128)
    p.add_argument('--batches', type=int, default=20)
    p.add_argument('--json', default=None)
    p.add_argument('--profile', default=None, help='write torch.profiler tables here')
    args = p.parse_args(argv)
    if args.draws_only:
        augment = GPUTrainAugment(use_gpu_augment(Config.fromfile(CONFIG)).data_preprocessor
                                  .augment)
        ms = draws_ms(augment, args.batch, args.batches)
        print(f'host draws for a batch of {args.batch}: {ms:.2f} ms')
        return [dict(stage='draws', host_ms=ms)]
    if not torch.cuda.is_available() or not args.data:
        raise SystemExit('gpu_augment_speed needs a CUDA GPU and --data (or --draws-only).')
    kib = make_jpeg_imagenet(args.data, args.images)
    files = sorted(glob.glob(osp.join(args.data, 'train', '*', '*.JPEG')))[:args.batch]
    encoded = [torch.frombuffer(bytearray(open(f, 'rb').read()), dtype=torch.uint8)
               for f in files]
    device = torch.device('cuda')

    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample
    cfg = use_gpu_augment(Config.fromfile(CONFIG))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        preprocessor = MODELS.build(dict(cfg.data_preprocessor, batch_augments=cfg.model.train_cfg)
                                    ).to(device)  # as ImageClassifier builds it
    crop_only = GPUTrainAugment(cfg.data_preprocessor.augment[:1])

    def batch() -> dict:
        samples = [DataSample(metainfo=dict(orientation=1)).set_gt_label(i % 1000)
                   for i in range(len(encoded))]
        return dict(inputs=list(encoded), data_samples=samples)

    import mmcv
    t0 = time.perf_counter()
    for data in encoded:
        mmcv.imfrombytes(data.numpy().tobytes())
    cpu_decode = len(encoded) / (time.perf_counter() - t0)

    images = decode_images(encoded, [1] * len(encoded), device)
    rows = [
        dict(stage='nvJPEG decode', **host_and_gpu_ms(
            lambda: decode_images(encoded, [1] * len(encoded), device), args.batches)),
        dict(stage='RandomResizedCrop alone', **host_and_gpu_ms(
            lambda: crop_only(images), args.batches)),
        dict(stage='augment (crop, flip, RandAugment, erase)', **host_and_gpu_ms(
            lambda: preprocessor.augment(images), args.batches)),
        dict(stage='data preprocessor (all of it, + normalise, Mixup/CutMix)',
             **host_and_gpu_ms(lambda: preprocessor(batch(), True), args.batches)),
    ]
    print(f'# {torch.cuda.get_device_name()}, torch {torch.__version__}, batch '
          f'{len(encoded)} JPEGs of {kib:.0f} KiB mean')
    print('| stage | host ms | done ms | img/s (done) |')
    print('|---|---|---|---|')
    for r in rows:
        r['img_s'] = len(encoded) / r['done_ms'] * 1e3
        print(f"| {r['stage']} | {r['host_ms']:.1f} | {r['done_ms']:.1f} | {r['img_s']:.0f} |")
    print(f'| CPU decode (mmcv.imfrombytes, one core) | - | - | {cpu_decode:.0f} |')
    if args.profile:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                                torch.profiler.ProfilerActivity.CUDA]) as prof:
            for _ in range(2):
                preprocessor(batch(), True)
            torch.cuda.synchronize()
        with open(args.profile, 'w') as f:
            for key in ('cpu_time_total', 'self_cpu_time_total'):
                f.write(f'--- two preprocessor calls, by {key} ---\n' + prof.key_averages()
                        .table(sort_by=key, row_limit=45, max_name_column_width=70))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(card=torch.cuda.get_device_name(), kib=kib, cpu_decode_img_s=cpu_decode,
                           rows=rows), f, indent=1)
    return rows


if __name__ == '__main__':
    main()
