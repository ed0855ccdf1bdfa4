"""Distributed training on CPU: the path multi-GPU training takes (torchrun, one process per
device, DDP, the distributed sampler, rank-0 checkpoints) with the gloo backend and 2 processes,
so that CI guards it without GPUs (the GPU run is benchmarks/ddp.sh).

* ``benchmarks/ddp_check.py --device cpu`` trains a deterministic classification toy as
  1 process x batch 4 and as 2 processes x batch 2 (``tools/dist_train.sh``): DDP must give
  the same losses and weights, to float32 rounding.
* ``tools/dist_train.sh`` trains the segmentation toy config as it is (BN in training mode,
  random augmentation) in 2 processes.
"""
import glob
import json
import os.path as osp
import socket
import sys

import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.runner import load_checkpoint

from mmmobilemamba.datasets.toy_segmentation import make_toy_ade

ITERS = 3  # benchmarks/configs/ddp_cls_cpu.py
# What a gloo rank prints when it aborts in PyTorch's teardown after its run has finished
# (seen in this test inside the full suite on this project's CPU machines, in CI too, with
# and without destroy_process_group; never in 23 runs of the same command alone). Its log,
# checkpoint and metrics are complete by then, and the test checks those.
TEARDOWN_ABORT = 'terminate called without an active exception'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def run_distributed(run_tool):
    """``run_distributed(tool, *args)``: a tool on the CPU only, torchrun's rendezvous on a
    free port, this Python for the shell launchers."""
    def run(tool: str, *args: str, timeout: int = 300, teardown_abort_ok: bool = False) -> str:
        env = dict(CUDA_VISIBLE_DEVICES='', PYTHON=sys.executable, PORT=str(free_port()))
        out = run_tool(tool, *args, timeout=timeout, env=env, check=not teardown_abort_ok)
        if out.returncode != 0 and TEARDOWN_ABORT not in out.output:
            pytest.fail(f'{tool} exited with {out.returncode}:\n{out.output[-3000:]}',
                        pytrace=False)
        return out.output
    return run


@pytest.fixture(scope='module')
def build_run_model(build_model):
    """``build_run_model(cfg_path)``: a single-process model from a run's dumped config."""
    return lambda cfg_path: build_model(Config.fromfile(cfg_path, import_custom_modules=False))


def wavelet_filters(module: torch.nn.Module) -> dict:
    return {k: v for k, v in module.named_parameters() if k.endswith(('wt_filter', 'iwt_filter'))}


@pytest.fixture(scope='module')
def ddp_check(tmp_path_factory, run_distributed) -> dict:
    """ddp_check.py on CPU, classification toy: run a (1 x 4) and run b (2 x 2)."""
    work_dir = tmp_path_factory.mktemp('ddp_check')
    summary = work_dir / 'summary.json'
    run_distributed('benchmarks/ddp_check.py', '--device', 'cpu', '--tasks', 'cls',
                    '--work-dir', str(work_dir), '--summary', str(summary))
    with open(summary) as f:
        report, = json.load(f)
    return report


@pytest.mark.slow
def test_two_processes_train_like_one_process_with_the_global_batch(ddp_check):
    a, b = ddp_check['runs']['a'], ddp_check['runs']['b']
    assert (a['returncode'], b['returncode']) == (0, 0)
    assert (a['global_batch'], b['global_batch'], b['batch_per_device']) == (4, 4, 2)
    assert (a['world_size'], b['world_size']) == (1, 2)  # 'GPU number' in the runs' logs
    with open(b['log']) as f:
        log = f.read()
    assert 'Distributed training: True' in log and 'Distributed launcher: pytorch' in log
    # every parameter that needs a gradient gets one: DDP runs without find_unused_parameters
    # (it would fail in the 2nd iteration otherwise), and nothing turned it on
    assert 'find_unused_parameters=False' in log and 'find_unused_parameters=True' not in log
    losses_a = [a['losses'][str(i)] for i in range(1, ITERS + 1)]
    losses_b = [b['losses'][str(i)] for i in range(1, ITERS + 1)]
    assert all(torch.isfinite(torch.tensor(losses_a + losses_b)))
    assert abs(losses_a[-1] - losses_a[0]) > 1e-3  # it trained, so the comparison means something
    # b logs its ranks' mean loss (RankMeanLossHook): the loss of the same global batch, to
    # float32 rounding (~1e-7; rank 0's own half batch is already 4e-6 off in iteration 2)
    for la, lb in zip(losses_a, losses_b):
        assert abs(la - lb) <= 1e-6 * abs(la)
    # DDP's averaged gradients are the global batch's: the same weights after 3 steps
    assert ddp_check['a_vs_b']['weights']['rel_err'] < 1e-6
    assert ddp_check['rank0_checkpoint'] == {'loads_cpu': True}


@pytest.mark.slow
def test_rank0_checkpoint_loads_strictly_in_one_cpu_process(ddp_check, build_run_model):
    b = ddp_check['runs']['b']
    assert osp.basename(b['checkpoint']) == f'iter_{ITERS}.pth'
    model = build_run_model(b['config'])
    fresh = {k: v.detach().clone() for k, v in wavelet_filters(model).items()}
    assert fresh and not any(p.requires_grad for p in wavelet_filters(model).values())
    load_checkpoint(model, b['checkpoint'], map_location='cpu', strict=True, logger='silent')
    ckpt = torch.load(b['checkpoint'], map_location='cpu')  # mmmobilemamba allow-lists
    assert ckpt['meta']['iter'] == ITERS
    # the frozen wavelet filters come back untouched by DDP, the optimizer and the EMA
    for key in ('state_dict', 'ema_state_dict'):
        saved = {k[len('module.'):] if k.startswith('module.') else k: v  # EMA's wrapper
                 for k, v in ckpt[key].items()}
        for name, value in fresh.items():
            assert torch.equal(saved[name], value), (key, name)
    model.eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 32, 32), mode='tensor')
    assert out.shape == (2, 4) and torch.isfinite(out).all()


@pytest.mark.slow
def test_segmentation_toy_config_trains_in_two_processes(tmp_path, run_distributed,
                                                         data_root_options, build_run_model):
    """The config as users run it (BN in training mode, random crops and flips), 2 ranks.
    A rank that aborts in PyTorch's teardown after finishing (``TEARDOWN_ABORT``) is let
    through: what the run wrote must be complete all the same."""
    data_root = make_toy_ade(str(tmp_path / 'ade'), num_train=4, num_val=2, size=64)
    work_dir = tmp_path / 'work'
    run_distributed('tools/dist_train.sh', 'configs/segmentation/fpn_mobilemamba_b4_toy.py', '2',
                    '--work-dir', str(work_dir), '--cfg-options', *data_root_options(data_root),
                    'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
                    'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
                    'log_processor.window_size=1', 'env_cfg.dist_cfg.backend=gloo',
                    teardown_abort_ok=True)
    log, = glob.glob(str(work_dir / '2*' / '2*.log'))
    with open(log) as f:
        text = f.read()
    assert 'GPU number: 2' in text and 'Iter(train) [2/2]' in text and 'mIoU' in text
    with open(glob.glob(str(work_dir / '2*' / 'vis_data' / 'scalars.json'))[0]) as f:
        losses = [json.loads(line)['loss'] for line in f if '"loss"' in line]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    model = build_run_model(str(work_dir / 'fpn_mobilemamba_b4_toy.py'))
    load_checkpoint(model, str(work_dir / 'iter_2.pth'), map_location='cpu', strict=True,
                    logger='silent')


def test_syncbn_takes_only_gpu_tensors():
    """Why the CPU check freezes BatchNorm instead of syncing it: torch's SyncBatchNorm raises
    for CPU tensors, even in a process group (if this starts to pass, the CPU check can use
    SyncBN like the GPU one)."""
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{free_port()}', rank=0,
                            world_size=1)
    try:
        with pytest.raises(ValueError, match='SyncBatchNorm expected input tensor to be on GPU'):
            torch.nn.SyncBatchNorm(4)(torch.randn(2, 4, 3, 3))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU launch path only')
def test_cpu_launch_with_nccl_names_the_fix():
    from mmmobilemamba.utils.run_config import init_cpu_distributed
    cfg = Config(dict(launcher='pytorch', env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    with pytest.raises(RuntimeError, match=r"cannot use the 'nccl' backend.*backend=gloo"):
        init_cpu_distributed(cfg)
    assert not dist.is_initialized()
