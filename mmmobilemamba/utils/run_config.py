"""What tools/train.py and tools/test.py share: launcher flags, config loading, the runner."""
import argparse
import datetime
import os
import os.path as osp

import torch
import torch.distributed as dist
from mmengine.config import Config, DictAction
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner, find_latest_checkpoint

from .checkpoint import check_state_dict_matches, is_local, read_checkpoint, unwrap_state_dict
from .dependencies import TASK_LIBRARIES, require_library


def add_launch_args(parser: argparse.ArgumentParser, cfg_example: str) -> None:
    """``--cfg-options``, ``--launcher`` and ``--local-rank``, as every OpenMMLab tool has."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help=f'override config entries, e.g. {cfg_example}')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_run_config(args: argparse.Namespace) -> Config:
    """Config file + ``--cfg-options`` + launcher; work_dir defaults to work_dirs/<name>."""
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = Config.fromfile(args.config)
    if cfg.get('default_scope') in TASK_LIBRARIES:
        require_library(cfg.default_scope, args.config)
    cfg.launcher = args.launcher
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def build_train_cfg(args: argparse.Namespace) -> Config:
    """tools/train.py's config: :func:`load_run_config` plus its --amp, --amp-dtype,
    --gpu-augment, --cuda-graph, --auto-scale-lr and --resume flags."""
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
    if getattr(args, 'gpu_augment', False):
        from ..models.data_preprocessors import use_gpu_augment
        use_gpu_augment(cfg)
    if getattr(args, 'cuda_graph', False):
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
            dict(type='CUDAGraphTrainStepHook')]
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg:
            raise KeyError(f'--auto-scale-lr needs an "auto_scale_lr" entry in {args.config}.')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def init_cpu_distributed(cfg: Config) -> None:
    """Start torchrun's process group with gloo when the processes have no GPU.

    MMEngine 0.10.7's ``pytorch`` launcher calls ``torch.cuda.set_device`` (an error without a
    GPU) and gives DDP ``device_ids=[LOCAL_RANK]``, which DDP rejects for a CPU model. The
    runner skips its own init when a process group exists, and ``device_ids=None`` is DDP's
    CPU form, so CPU-only multi-process runs (tests, CI) take the same code path otherwise.
    """
    if cfg.launcher != 'pytorch' or torch.cuda.is_available() or dist.is_initialized():
        return
    dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}))
    backend = dist_cfg.pop('backend', 'nccl')
    if backend != 'gloo':
        raise RuntimeError(
            f'No CUDA device, so distributed training cannot use the {backend!r} backend. '
            'On CPU use gloo: --cfg-options env_cfg.dist_cfg.backend=gloo')
    if 'timeout' in dist_cfg:
        dist_cfg['timeout'] = datetime.timedelta(seconds=dist_cfg['timeout'])
    dist.init_process_group(backend='gloo', **dist_cfg)
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    if wrapper.get('type', 'MMDistributedDataParallel') == 'MMDistributedDataParallel':
        wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def build_runner(cfg: Config, mode: str = 'train') -> Runner:
    """The config's runner, after :func:`check_run_checkpoint` (``mode``: 'train'/'test')."""
    init_cpu_distributed(cfg)
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    check_run_checkpoint(cfg, runner, mode)
    return runner


def close_distributed() -> None:
    """Destroy the process group once a run has finished, as PyTorch asks of every
    distributed program: its communicators and threads end in order, before the
    interpreter's own teardown."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def check_run_checkpoint(cfg: Config, runner: Runner, mode: str = 'train') -> None:
    """Fail before training or testing when the checkpoint the runner will load (load_from,
    --resume, or the latest one in the work dir for a bare --resume) is truncated, not a
    torch file, or of another model.

    Resuming and testing need every tensor of the model; ``load_from`` for fine-tuning only
    most of them (a new head is fine; MMEngine lists the rest when it loads).
    """
    resume = mode == 'train' and bool(cfg.get('resume'))
    filename = cfg.get('load_from') or (find_latest_checkpoint(cfg.work_dir) if resume else None)
    if not filename or not is_local(filename):
        return
    checkpoint = read_checkpoint(filename)
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    meta = checkpoint.get('meta')
    source = meta.get('experiment_name') if isinstance(meta, dict) else None
    use = '--resume' if resume else ('tools/test.py' if mode == 'test' else 'load_from')
    check_state_dict_matches(
        filename, unwrap_state_dict(checkpoint, wrappers=('state_dict', )), model.state_dict(),
        what=f'{type(model).__name__} of {osp.basename(cfg.filename or "the config")}',
        strict=resume or mode == 'test',
        hint=(f'It was saved by run {source!r}. ' if source else '')
        + f'Give {use} a checkpoint trained with this config.')
