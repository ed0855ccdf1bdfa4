"""Soak test: repeated train/eval cycles on toy data, watching memory (RSS) and the metric.

One MMEngine Runner trains as a long run does; each cycle is one training epoch (with its
checkpoint) followed by validation. After every validation the process RSS and the metric are
recorded; the run stops after ``--minutes`` or ``--cycles``. The summary gives the RSS growth
(in MB and, after ``--warmup-cycles``, as a least-squares slope in MB per cycle) and the metric
drift, and everything goes to ``--out`` as JSON.

    python benchmarks/soak.py --minutes 10 --out work_dirs/soak/soak.json
    python benchmarks/soak.py --cycles 2 --data-root data/toy/imagenet --out s.json

Without ``--data-root`` the toy ImageNet (4 classes, 32 train + 8 val images of 64 px) is
written to a temporary folder. Linux only (RSS is read from /proc/self/status).
"""
import argparse
import json
import os
import os.path as osp
import platform
import tempfile
import time
from typing import List, Optional

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.hooks import Hook
from mmengine.runner import Runner

import mmmobilemamba  # noqa: F401  (registers our modules)
from mmmobilemamba.datasets.toy_classification import make_toy_imagenet

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'classification',
                          'mobilemamba_t2_8xb128_in1k_toy.py')
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def rss_mb() -> float:
    """Resident set size of this process in MB (VmRSS)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    raise RuntimeError('VmRSS not found in /proc/self/status: soak.py needs Linux.')


class SoakHook(Hook):
    """After each validation: record RSS and the metric; stop when time or cycles run out."""

    priority = 'LOWEST'

    def __init__(self, records: List[dict], minutes: float, max_cycles: Optional[int],
                 metric: Optional[str]) -> None:
        self.records, self.max_cycles, self.metric = records, max_cycles, metric
        self.deadline = time.monotonic() + 60 * minutes
        self.start = time.monotonic()

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        metrics = metrics or {}
        key = self.metric or next(iter(metrics), None)
        self.records.append(dict(
            cycle=len(self.records) + 1, epoch=runner.epoch, iter=runner.iter,
            elapsed_s=round(time.monotonic() - self.start, 2), rss_mb=round(rss_mb(), 1),
            metric=None if key is None else float(metrics[key]), metric_name=key))
        done = self.max_cycles is not None and len(self.records) >= self.max_cycles
        if done or time.monotonic() >= self.deadline:
            runner.train_loop.stop_training = True


def summarize(records: List[dict], warmup: int) -> dict:
    """RSS growth (total, after warm-up, MB/cycle slope) and metric drift over the cycles."""
    if not records:
        raise RuntimeError('No cycle finished: raise --minutes or lower the data size.')
    rss = np.array([r['rss_mb'] for r in records])
    warmup = min(warmup, len(records) - 1)
    tail = rss[warmup:]
    slope = float(np.polyfit(np.arange(len(tail)), tail, 1)[0]) if len(tail) >= 2 else None
    metric = [r['metric'] for r in records]
    known = metric[0] is not None
    return dict(
        cycles=len(records), warmup_cycles=warmup,
        rss_start_mb=float(rss[0]), rss_end_mb=float(rss[-1]),
        rss_peak_mb=float(rss.max()), rss_growth_mb=float(rss[-1] - rss[0]),
        rss_growth_after_warmup_mb=float(tail[-1] - tail[0]),
        rss_mb_per_cycle_after_warmup=slope,
        metric_name=records[0]['metric_name'],
        metric_first=metric[0], metric_after_warmup=metric[warmup], metric_last=metric[-1],
        metric_drift_after_warmup=(metric[-1] - metric[warmup]) if known else None,
        metric_min_after_warmup=min(metric[warmup:]) if known else None,
        metric_max_after_warmup=max(metric[warmup:]) if known else None)


def build_cfg(args: argparse.Namespace, data_root: str, work_dir: str) -> Config:
    """The toy config as one long run: a cycle per epoch, constant lr after warm-up."""
    cfg = Config.fromfile(args.config)
    for loader in LOADERS:
        if cfg.get(loader):
            cfg[loader].dataset.data_root = data_root
    cfg.work_dir = work_dir
    cfg.train_cfg = dict(by_epoch=True, max_epochs=10**6, val_interval=1)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=1,
                                convert_to_iter_based=True)]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1, max_keep_ckpts=1,
                                        save_best=None)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Repeated train/eval cycles, watching RSS')
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='a toy training config')
    parser.add_argument('--minutes', type=float, default=10.0, help='stop after this long')
    parser.add_argument('--cycles', type=int, help='stop after this many cycles')
    parser.add_argument('--warmup-cycles', type=int, default=3,
                        help='cycles left out of the growth slope (allocator warm-up)')
    parser.add_argument('--data-root', help='toy ImageNet folder (default: write one)')
    parser.add_argument('--work-dir', help='runner work dir (default: a temporary folder)')
    parser.add_argument('--metric', help="metric to track (default: the first, e.g. "
                        "'accuracy/top1')")
    parser.add_argument('--out', required=True, help='JSON file for the records and summary')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. train_dataloader.batch_size=8')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.minutes <= 0 and not args.cycles:
        raise ValueError('Give --minutes > 0 or --cycles.')
    with tempfile.TemporaryDirectory(prefix='soak_') as tmp:
        data_root = args.data_root or osp.join(tmp, 'toy_imagenet')
        if not args.data_root:
            make_toy_imagenet(data_root)
        cfg = build_cfg(args, data_root, args.work_dir or osp.join(tmp, 'work_dir'))
        records: List[dict] = []
        runner = Runner.from_cfg(cfg)
        rss_built = rss_mb()
        runner.register_hook(SoakHook(records, args.minutes, args.cycles, args.metric))
        start = time.monotonic()
        runner.train()
        wall = time.monotonic() - start
    result = dict(
        config=args.config, minutes=args.minutes, max_cycles=args.cycles,
        wall_s=round(wall, 1), rss_after_build_mb=round(rss_built, 1),
        settings=dict(torch=torch.__version__, python=platform.python_version(),
                      cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads(),
                      omp_num_threads=os.environ.get('OMP_NUM_THREADS'),
                      batch_size=cfg.train_dataloader.batch_size,
                      train_images=len(runner.train_dataloader.dataset),
                      val_images=len(runner.val_dataloader.dataset)),
        summary=summarize(records, args.warmup_cycles), records=records)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=1)
    s = result['summary']
    slope = s['rss_mb_per_cycle_after_warmup']
    print(f"soak: {s['cycles']} cycles in {wall:.0f} s; RSS {s['rss_start_mb']:.0f} -> "
          f"{s['rss_end_mb']:.0f} MB ({s['rss_growth_mb']:+.1f} MB"
          + (f', {slope:+.3f} MB/cycle after warm-up' if slope is not None else '')
          + f"); {s['metric_name']}: {s['metric_first']} -> {s['metric_last']}; "
          f'written to {args.out}')


if __name__ == '__main__':
    main()
