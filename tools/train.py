"""Train any mmmobilemamba config: classification, detection or segmentation.

The task library follows from the config's ``default_scope`` (mmpretrain, mmdet, mmseg).
"""
import argparse

import torch
from mmengine.config import Config

import mmmobilemamba  # noqa: F401  (registers our modules)
from mmmobilemamba.utils import check_dataset_paths
from mmmobilemamba.utils.run_config import add_launch_args, build_runner, load_run_config


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a MobileMamba model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='directory for logs and checkpoints')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from a checkpoint path, or from the latest one in '
                        'the work dir when no path is given')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument('--amp-dtype', choices=['bfloat16', 'float16'],
                        help='autocast dtype with --amp (default: the config\'s '
                        'optim_wrapper.dtype, else bfloat16: float32\'s range, so nothing '
                        'overflows; float16 for GPUs without bfloat16, e.g. V100, T4)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by total batch size / auto_scale_lr.base_batch_size')
    add_launch_args(parser, 'train_cfg.max_iters=10')
    return parser.parse_args()


def build_cfg(args: argparse.Namespace) -> Config:
    cfg = load_run_config(args)
    if args.amp_dtype and not args.amp:
        raise ValueError('--amp-dtype needs --amp.')
    if args.amp:
        dtype = cfg.optim_wrapper.get('dtype')
        if args.amp_dtype and dtype and args.amp_dtype != dtype:
            raise ValueError(f'--amp-dtype {args.amp_dtype} contradicts the config\'s '
                             f'optim_wrapper.dtype={dtype!r}; give one of them.')
        dtype = args.amp_dtype or dtype or 'bfloat16'
        if (dtype == 'bfloat16' and torch.cuda.is_available()
                and not torch.cuda.is_bf16_supported()):
            raise ValueError(f'--amp: {torch.cuda.get_device_name()} has no bfloat16 support; '
                             'train with --amp --amp-dtype float16.')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
        cfg.optim_wrapper.dtype = dtype
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg:
            raise KeyError(f'--auto-scale-lr needs an "auto_scale_lr" entry in {args.config}.')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def main() -> None:
    args = parse_args()
    cfg = build_cfg(args)
    check_dataset_paths(cfg, splits=('train_dataloader', 'val_dataloader'))
    runner = build_runner(cfg)
    runner.train()


if __name__ == '__main__':
    main()
