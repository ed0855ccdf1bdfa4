"""What one training batch of ``--gpu-augment`` costs, stage by stage: the S6 recipe's batch
(128 ImageNet-like JPEGs), decoded and drawn in a worker (``LoadImageFromFile`` +
``DrawGPUAugment``: img/s on one core), then in the training process copied to the GPU,
augmented there (RandomResizedCrop, flip, RandAugment, RandomErasing) and mixed
(Mixup/CutMix). For each stage of the training process: the host's time to return (what
the training loop waits for) and the time until the GPU has finished it.

    python benchmarks/gpu_augment_speed.py --data /tmp/jpeg [--batches 20] [--json out.json] \
        [--profile profile.txt]   # + torch.profiler tables of two preprocessor calls
    python benchmarks/gpu_augment_speed.py --draws-only   # any machine: a batch's draws
"""
import argparse
import collections
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


def draws_ms(augment: GPUTrainAugment, batch: int, batches: int) -> dict:
    """Median ms to draw a batch's parameters for 375 x 500 images (Python, in the
    workers: each draws its own images'), and to build its RandAugment groups from them
    (NumPy, in the training process); over the timed batches, how often each pair of
    group capacities (pixel ops, warps) came up and the groups' mean sizes."""
    draws, groups, pairs, sizes = [], [], collections.Counter(), ([], [])
    for i in range(batches + 3):
        t0 = time.perf_counter()
        rows = torch.stack([augment.draw(375, 500) for _ in range(batch)])
        t1 = time.perf_counter()
        op_index, warp_index = augment.groups(rows[:, 4:])
        groups.append(time.perf_counter() - t1)
        draws.append(t1 - t0)
        if i >= 3:
            pairs[(op_index.shape[1], warp_index.shape[1])] += 1
            for size, index in zip(sizes, (op_index, warp_index)):
                size.append((index >= 0).sum(1).float().mean().item())
    return dict(draws=1e3 * float(np.median(draws[3:])),
                groups=1e3 * float(np.median(groups[3:])),
                capacities={f'{a}/{b}': n for (a, b), n in sorted(pairs.items())},
                mean_pixel_group=float(np.mean(sizes[0])),
                mean_warp_group=float(np.mean(sizes[1])))


def op_gpu_ms(augment: GPUTrainAugment, batch: torch.Tensor, runs: int = 10) -> Dict[str, float]:
    """Median GPU ms of each pixel op of the dense augmentation on the whole ``batch``."""
    from mmmobilemamba.models.data_preprocessors.gpu_augment import (
        WARPS, apply_randaug_op, erase, warp_affine)
    n, device = len(batch), batch.device
    values = torch.full((n, ), 0.5, device=device)
    inverse = torch.tensor([[0.98, -0.17, 20.0], [0.17, 0.98, -18.0]], device=device)
    fns = {'flip': lambda: torch.where(values.view(-1, 1, 1, 1) > 0, batch.flip(-1), batch)}
    scales = {'Posterize': 8, 'Solarize': 200, 'SolarizeAdd': 100}  # in each op's range
    for op in augment.transforms[2].transforms:
        name = type(op).__name__
        if name not in WARPS:
            fns[name] = lambda op=op, name=name: apply_randaug_op(
                op, batch, values * scales.get(name, 1))
    fns['warp (Rotate/Shear/Translate, one for all)'] = lambda: warp_affine(
        batch, inverse.expand(n, 2, 3), torch.full((n, 3), 100.0, device=device))
    rects = torch.tensor([[10, 20, 100, 80]], device=device).expand(n, 4)
    fill = torch.tensor([104.0, 116.0, 124.0], device=device)
    fns['RandomErasing (rand)'] = lambda: erase(batch, rects, 'rand', fill, fill / 2)
    out = {}
    for name, fn in fns.items():
        times = []
        for _ in range(runs + 2):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        out[name] = float(np.median(times[2:]))
    return out


def worker_batches(cfg: Config, files: List[str], batches: int) -> tuple:
    """``batches`` batches of ``files`` as the workers make them (the rewritten pipeline,
    then ``one_storage_collate``), and one worker's img/s doing so."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import TRANSFORMS

    from mmmobilemamba.datasets.collate import one_storage_collate
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        pipeline = [TRANSFORMS.build(dict(t)) for t in cfg.train_dataloader.dataset.pipeline]
    out, t0 = [], time.perf_counter()
    for _ in range(batches):
        samples = []
        for i, path in enumerate(files):
            results = dict(img_path=path, gt_label=i % 1000)
            for t in pipeline:
                results = t(results)
            samples.append(results)
        out.append(one_storage_collate(samples))
    return out, batches * len(files) / (time.perf_counter() - t0)


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
        np.random.seed(0)  # the transforms draw from NumPy's global generator
        ms = draws_ms(augment, args.batch, args.batches)
        print(f"host draws for a batch of {args.batch}: {ms['draws']:.2f} ms; its "
              f"RandAugment groups: {ms['groups']:.3f} ms")
        print(f"group capacities (pixel ops/warps) in {args.batches} batches: "
              f"{ms['capacities']}; mean group: pixel op {ms['mean_pixel_group']:.2f}, "
              f"warps {ms['mean_warp_group']:.2f} images")
        return [dict(stage=stage, host_ms=ms[stage]) for stage in ('draws', 'groups')]
    if not torch.cuda.is_available() or not args.data:
        raise SystemExit('gpu_augment_speed needs a CUDA GPU and --data (or --draws-only).')
    kib = make_jpeg_imagenet(args.data, args.images)
    files = sorted(glob.glob(osp.join(args.data, 'train', '*', '*.JPEG')))[:args.batch]
    device = torch.device('cuda')

    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    from mmmobilemamba.utils.device_copy import views_on_device
    cfg = use_gpu_augment(Config.fromfile(CONFIG))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        preprocessor = MODELS.build(dict(cfg.data_preprocessor, batch_augments=cfg.model.train_cfg)
                                    ).to(device)  # as ImageClassifier builds it
    crop_only = GPUTrainAugment(cfg.data_preprocessor.augment[:1])
    batches, worker_img_s = worker_batches(cfg, files, 2)
    inputs = batches[0]['inputs']
    params = torch.stack([s.gpu_augment for s in batches[0]['data_samples']])
    images = views_on_device(inputs, device)

    copies = iter([[s.clone() for s in batches[0]['data_samples']]
                   for _ in range(args.batches + 6)])  # each call uses up its draws

    def preprocess() -> None:
        preprocessor(dict(inputs=inputs, data_samples=next(copies)), True)

    rows = [
        dict(stage='copy to the GPU (one storage)', **host_and_gpu_ms(
            lambda: views_on_device(inputs, device), args.batches)),
        dict(stage='RandomResizedCrop alone', **host_and_gpu_ms(
            lambda: crop_only(images, params[:, :4]), args.batches)),
        dict(stage='augment (crop, flip, RandAugment, erase)', **host_and_gpu_ms(
            lambda: preprocessor.augment(images, params), args.batches)),
        dict(stage='data preprocessor (all of it: copy, augment, normalise, Mixup/CutMix)',
             **host_and_gpu_ms(preprocess, args.batches)),
    ]
    print(f'# {torch.cuda.get_device_name()}, torch {torch.__version__}, batch '
          f'{len(files)} JPEGs of {kib:.0f} KiB mean')
    print('| stage | host ms | done ms | img/s (done) |')
    print('|---|---|---|---|')
    for r in rows:
        r['img_s'] = len(files) / r['done_ms'] * 1e3
        print(f"| {r['stage']} | {r['host_ms']:.1f} | {r['done_ms']:.1f} | {r['img_s']:.0f} |")
    ops = op_gpu_ms(preprocessor.augment, crop_only(images, params[:, :4]))
    print('| op, on the whole cropped batch (a RandAugment slot runs each on its group, '
          f'{preprocessor.augment.groups(params[:, 4:])[0].shape[1]} images here) | GPU ms |')
    print('|---|---|')
    for name, ms in ops.items():
        print(f'| {name} | {ms:.3f} |')
    print(f'| worker: decode + draws (LoadImageFromFile, DrawGPUAugment; one core) | - | - '
          f'| {worker_img_s:.0f} |')
    if args.profile:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                                torch.profiler.ProfilerActivity.CUDA]) as prof:
            for _ in range(2):
                preprocess()
            torch.cuda.synchronize()
        with open(args.profile, 'w') as f:
            for key in ('cpu_time_total', 'self_cpu_time_total'):
                f.write(f'--- two preprocessor calls, by {key} ---\n' + prof.key_averages()
                        .table(sort_by=key, row_limit=45, max_name_column_width=70))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(card=torch.cuda.get_device_name(), kib=kib, rows=rows, ops=ops,
                           worker_img_s=worker_img_s), f, indent=1)
    return rows


if __name__ == '__main__':
    main()
