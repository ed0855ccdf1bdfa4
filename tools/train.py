"""Train any mmmobilemamba config: classification, detection or segmentation.

The task library follows from the config's ``default_scope`` (mmpretrain, mmdet, mmseg).
"""
import argparse

import mmmobilemamba  # noqa: F401  (registers our modules)
from mmmobilemamba.utils import check_dataset_paths
from mmmobilemamba.utils.run_config import (add_launch_args, build_runner, build_train_cfg,
                                             close_distributed)


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
    parser.add_argument('--gpu-augment', action='store_true',
                        help='classification: the workers decode the training images and '
                        'draw their parameters; the augmentation runs on the GPU '
                        '(GPUAugmentClsDataPreprocessor), a batch ahead (PrefetchBatchesHook)')
    parser.add_argument('--cuda-graph', action='store_true',
                        help='replay each training step as one CUDA graph (one GPU, fixed '
                        'batch shapes, fp32 or --amp bfloat16; CUDAGraphTrainStepHook)')
    add_launch_args(parser, 'train_cfg.max_iters=10')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = build_train_cfg(args)
    check_dataset_paths(cfg, splits=('train_dataloader', 'val_dataloader'))
    runner = build_runner(cfg)
    runner.train()
    close_distributed()


if __name__ == '__main__':
    main()
