"""Test any mmmobilemamba config + checkpoint with the task's real metrics.

The task library follows from the config's ``default_scope`` (mmpretrain, mmdet, mmseg).
"""
import argparse

from mmengine.config import Config
from mmengine.evaluator import DumpResults

import mmmobilemamba  # noqa: F401  (registers our modules)
from mmmobilemamba.utils import check_checkpoint_file, check_dataset_paths
from mmmobilemamba.utils.run_config import (add_launch_args, build_runner, close_distributed,
                                             load_run_config)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a MobileMamba model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='directory for the evaluation logs')
    parser.add_argument('--out', help='dump raw predictions to this pickle file')
    parser.add_argument('--show-dir', help='draw predictions into this folder '
                        '(inside the work dir\'s timestamped folder for det/seg)')
    parser.add_argument('--fuse', action='store_true',
                        help='fold BatchNorm into convs/linears before testing (deploy mode)')
    add_launch_args(parser, 'test_dataloader.batch_size=8')
    return parser.parse_args()


def enable_visualization(cfg: Config, show_dir: str) -> None:
    """Turn on the task library's own visualization hook, writing into ``show_dir``."""
    scope = cfg.get('default_scope')
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise KeyError('--show-dir needs default_hooks.visualization in the config '
                       f'(scope {scope!r}).')
    if scope == 'mmpretrain':
        hook.update(enable=True, out_dir=show_dir)
    elif scope == 'mmdet':
        hook.update(draw=True, test_out_dir=show_dir)
    elif scope == 'mmseg':  # its hook has no test_out_dir; draw every image into save_dir
        hook.update(draw=True, interval=1)
        cfg.visualizer.save_dir = show_dir
    else:
        raise ValueError(f'--show-dir does not know the visualization hook of scope {scope!r}.')


def build_cfg(args: argparse.Namespace) -> Config:
    cfg = load_run_config(args)
    cfg.load_from = args.checkpoint
    if args.show_dir:
        enable_visualization(cfg, args.show_dir)
    if args.fuse:
        # A checkpoint saved under an EMAHook already holds the EMA weights in `state_dict`,
        # and the hook's swap-back after testing cannot pair the fused model's tensors.
        cfg.custom_hooks = [h for h in cfg.get('custom_hooks', []) if 'EMA' not in h['type']]
        cfg.custom_hooks.append(dict(type='SwitchToDeployHook'))
    return cfg


def main() -> None:
    args = parse_args()
    cfg = build_cfg(args)
    check_dataset_paths(cfg, splits=('test_dataloader', ))
    check_checkpoint_file(args.checkpoint)  # before the model is built
    runner = build_runner(cfg, mode='test')
    if args.out:
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    runner.test()
    close_distributed()


if __name__ == '__main__':
    main()
