"""End-to-end training speed of a classification config, the way tools/train.py runs it.

The real config (its pipeline, Mixup/CutMix, EMA, clipping, schedule and hooks) goes through
MMEngine's Runner on a folder of ImageNet-like JPEGs (written once: ``--images`` files of
400-520 x 300-400 px, ~70 KiB, 1000 classes). Validation and checkpoints are off. Reported:
the train data loader alone (its ceiling) and training, both in img/s after ``--warmup``
iterations, plus training's mean data_time. ``--amp``, ``--amp-dtype``, ``--gpu-augment`` and
``--cuda-graph`` are tools/train.py's (with ``--gpu-augment`` the loader alone decodes and
draws the parameters; ``--no-prefetch`` takes its ``PrefetchBatchesHook`` out, to time the
preprocessor in the loop; ``--prefetch-ahead N`` sets how many batches that hook prepares
ahead). The bare step's ceiling: tools/analysis/benchmark.py --train.

    python tools/analysis/train_speed.py configs/classification/mobilemamba_s6_8xb128_in1k.py \
        --data /tmp/jpeg-imagenet --workers 14 --amp --cuda-graph
"""
import argparse
import collections
import json
import os.path as osp
import time
import traceback
import warnings
from typing import Dict, List, Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

import mmmobilemamba  # noqa: F401  (registers our modules)
from mmmobilemamba.datasets.jpeg_imagenet import make_jpeg_imagenet
from mmmobilemamba.utils.run_config import add_launch_args, build_runner, build_train_cfg


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class ThroughputHook(Hook):
    """Wall time of the training iterations after the first ``warmup``; stops training at
    the end of the epoch that completes ``warmup + iters`` (the schedule stays the
    config's)."""

    priority = 'LOWEST'

    def __init__(self, warmup: int, iters: int, profile: Optional[str] = None,
                 sync_debug: bool = False) -> None:
        self.warmup, self.total, self.profile = warmup, warmup + iters, profile
        self.t0, self.seconds, self.iters, self.profiler = None, None, 0, None
        self.sync_debug, self.syncs = sync_debug, None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 == self.warmup:
            _sync()
            self.t0 = time.perf_counter()
            if self.profile:
                self.profiler = torch.profiler.profile(activities=[
                    torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA])
                self.profiler.start()
            if self.sync_debug:
                self._watch_syncs()
        elif runner.iter + 1 == self.warmup + 5:
            self._write_profile()
            self._report_syncs()

    def _watch_syncs(self) -> None:
        """Record where the host waits for the GPU (PyTorch's sync debug mode), by the
        Python stack that asked; the warning settings come back in ``_report_syncs``."""
        self.syncs, show = collections.Counter(), warnings.showwarning

        def record(message, category, *args, **kwargs):
            if 'called a synchronizing' not in str(message):  # PyTorch's wording
                return show(message, category, *args, **kwargs)
            stack = [f'{f.filename}:{f.lineno} {f.name}' for f in traceback.extract_stack()
                     if 'train_speed.py' not in f.filename][-6:-1]
            self.syncs[f'{str(message).splitlines()[0]}\n    ' + '\n    '.join(stack)] += 1

        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter('always')
        warnings.showwarning = record
        torch.cuda.set_sync_debug_mode('warn')

    def _report_syncs(self) -> None:
        if self.syncs is None:
            return
        torch.cuda.set_sync_debug_mode('default')
        self._warnings.__exit__(None, None, None)
        print(f'--- host-device synchronisations in 5 iterations: {sum(self.syncs.values())}')
        for where, n in self.syncs.most_common():
            print(f'{n:4d}x {where}')
        self.syncs = None

    def _write_profile(self) -> None:
        if self.profiler is None:
            return
        _sync()
        self.profiler.stop()
        with open(self.profile, 'w') as f:
            for key in ('cpu_time_total', 'self_cpu_time_total', 'cuda_time_total'):
                f.write(f'--- up to 5 iterations, by {key} ---\n' + self.profiler
                        .key_averages().table(sort_by=key, row_limit=40,
                                              max_name_column_width=70))
        self.profiler = None

    def after_train_epoch(self, runner) -> None:
        if runner.iter >= self.total:
            runner.train_loop.stop_training = True

    def after_train(self, runner) -> None:
        self._write_profile()
        _sync()
        if self.t0 is not None:
            self.seconds = time.perf_counter() - self.t0
            self.iters = runner.iter - self.warmup


def loader_speed(cfg, warmup: int, iters: int) -> float:
    """img/s of the train data loader alone (its workers, its pipeline, no model)."""
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    batches = iter(loader)
    for _ in range(warmup):
        next(batches)
    t0 = time.perf_counter()
    n = sum(len(next(batches)['inputs']) for _ in range(iters))
    seconds = time.perf_counter() - t0
    del batches, loader
    return n / seconds


def benchmark_cfg(args: argparse.Namespace):
    """tools/train.py's config on the JPEG folder, without validation or checkpoints."""
    cfg = build_train_cfg(args)
    if args.no_prefetch:
        cfg.custom_hooks = [h for h in cfg.get('custom_hooks', [])
                            if h['type'] != 'PrefetchBatchesHook']
    if args.prefetch_ahead is not None:
        hooks = [h for h in cfg.get('custom_hooks', []) if h['type'] == 'PrefetchBatchesHook']
        if not hooks:
            raise ValueError('--prefetch-ahead sets PrefetchBatchesHook, which this run does '
                             'not have (it comes with --gpu-augment; not with --no-prefetch).')
        hooks[0]['batches_ahead'] = args.prefetch_ahead
    if cfg.get('default_scope') != 'mmpretrain':
        raise ValueError(f'{args.config} is not a classification config; detection and '
                         'segmentation speed: benchmarks/downstream_timing.py.')
    loader = cfg.train_dataloader
    loader.dataset.update(data_root=args.data, split='train', ann_file='', data_prefix='')
    if args.workers is not None:
        loader.num_workers = args.workers
        loader.persistent_workers = args.workers > 0
    if args.batch_size:
        loader.batch_size = args.batch_size
    if args.images < loader.batch_size:
        raise ValueError(f'--images {args.images} is less than one batch of '
                         f'{loader.batch_size}.')
    cfg.train_cfg.pop('val_interval', None)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.default_hooks.checkpoint = None
    return cfg


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config')
    p.add_argument('--data', required=True, help='JPEG folder (written if missing)')
    p.add_argument('--images', type=int, default=6400)
    p.add_argument('--workers', type=int, default=None, help="default: the config's")
    p.add_argument('--batch-size', type=int, default=None, help="default: the config's")
    p.add_argument('--warmup', type=int, default=10, help='iterations before timing')
    p.add_argument('--iters', type=int, default=40, help='timed iterations (at least)')
    p.add_argument('--amp', action='store_true')
    p.add_argument('--amp-dtype', choices=['bfloat16', 'float16'])
    p.add_argument('--cuda-graph', action='store_true')
    p.add_argument('--gpu-augment', action='store_true')
    p.add_argument('--prefetch-ahead', type=int, default=None,
                   help="batches PrefetchBatchesHook prepares ahead (default: the hook's)")
    p.add_argument('--no-prefetch', action='store_true',
                   help="with --gpu-augment: prepare each batch in the loop, not ahead")
    p.add_argument('--skip-loader', action='store_true', help='do not time the loader alone')
    p.add_argument('--loader-only', action='store_true',
                   help='time the loader alone and do not train (no GPU needed)')
    p.add_argument('--work-dir', default=None)
    p.add_argument('--json', default=None, help='append the result as one JSON line')
    p.add_argument('--profile', default=None,
                   help='write torch.profiler tables of 5 iterations after the warm-up here '
                   '(their time then counts in the timed span)')
    p.add_argument('--sync-debug', action='store_true',
                   help='list where the host waits for the GPU in 5 iterations after the '
                   'warm-up (slows them)')
    add_launch_args(p, 'default_hooks.logger.interval=10')
    args = p.parse_args(argv)
    args.resume, args.auto_scale_lr = None, False
    return args


def append_json(path: Optional[str], result: Dict[str, object]) -> None:
    if path:
        with open(path, 'a') as f:
            f.write(json.dumps(result) + '\n')


def main(argv: Optional[List[str]] = None) -> Dict[str, object]:
    args = parse_args(argv)
    kib = make_jpeg_imagenet(args.data, args.images)
    cfg = benchmark_cfg(args)
    result: Dict[str, object] = dict(
        config=osp.basename(args.config), images=args.images, jpeg_kib=kib,
        batch=cfg.train_dataloader.batch_size, workers=cfg.train_dataloader.num_workers,
        precision=cfg.optim_wrapper.get('dtype', 'float32') if args.amp else 'float32',
        cuda_graph=args.cuda_graph, gpu_augment=args.gpu_augment,
        prefetch=next((h.get('batches_ahead', 1) for h in cfg.get('custom_hooks', [])
                       if h['type'] == 'PrefetchBatchesHook'), 0),
        card=torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')
    if not args.skip_loader or args.loader_only:
        result['loader_img_s'] = loader_speed(cfg, args.warmup, args.iters)
    if args.loader_only:
        print(json.dumps(result))
        print(f"| loader alone | GPU augment {args.gpu_augment} | batch {result['batch']} | "
              f"workers {result['workers']} | {result['loader_img_s']:.0f} img/s |")
        append_json(args.json, result)
        return result
    runner = build_runner(cfg)
    timer = ThroughputHook(args.warmup, args.iters, args.profile, args.sync_debug)
    runner.register_hook(timer)
    runner.train()
    if timer.seconds is None:
        raise RuntimeError('training ended within the warm-up; raise --images or --iters.')
    result['train_img_s'] = timer.iters * result['batch'] / timer.seconds
    result['timed_iters'] = timer.iters
    data_time = runner.message_hub.get_scalar('train/data_time').data[0]
    result['data_time_ms'] = 1e3 * float(np.mean(data_time[-timer.iters:]))
    print(json.dumps(result))
    loader = (f"{result['loader_img_s']:.0f}" if 'loader_img_s' in result else '-')
    print('| config | precision | GPU augment | prefetch | CUDA graph | batch | workers '
          '| loader alone img/s | train img/s | data_time ms |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    print(f"| {result['config']} | {result['precision']} | {args.gpu_augment} | "
          f"{result['prefetch']} | {args.cuda_graph} | {result['batch']} | "
          f"{result['workers']} | {loader} | "
          f"{result['train_img_s']:.0f} | {result['data_time_ms']:.1f} |")
    append_json(args.json, result)
    return result


if __name__ == '__main__':
    main()
