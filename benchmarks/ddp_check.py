"""Data-parallel check: 1 device with batch 2N against 2 devices with batch N, same seed.

For each task it trains a deterministic version of the task's toy config
(``benchmarks/configs/ddp_{cls,seg}.py``, and ``*_cpu.py`` for ``--device cpu``: no random
augmentation, Mixup/CutMix, dropout or stochastic depth, an unshuffled sampler, so both runs
see the same global batches) three ways:

* ``a``: 1 device, batch 2N (``tools/train.py``);
* ``b``: 2 devices, batch N each (``tools/dist_train.sh``, i.e. torchrun + DDP);
* ``c``: 1 device, batch N (throughput baseline at the same batch per device; ``--baseline``).

N is the config's ``train_dataloader.batch_size``. It compares the per-iteration losses of
``a`` and ``b`` (``b`` logs the loss averaged over its ranks, through ``RankMeanLossHook``;
MMEngine alone logs rank 0's half batch), their final weights and their throughput, and loads
``b``'s rank-0 checkpoint strictly into a fresh model on the CPU (and on GPU 0). A table is
printed last and ``--summary`` gets every number.

On GPUs: NCCL, ``sync_bn='torch'`` and ``--amp`` (fp16, dynamic loss scale). On CPU (gloo;
the CPU test and a dry run) there is no SyncBN (torch's SyncBatchNorm takes only GPU
tensors), so the ``*_cpu.py`` configs freeze the backbone's BatchNorms and give the heads
none: that keeps ``a`` and ``b`` equivalent to float32 rounding.

    python benchmarks/ddp_check.py --work-dir work_dirs/ddp_check        # 2 GPUs
    python benchmarks/ddp_check.py --device cpu --tasks cls               # CPU, seconds
"""
import argparse
import copy
import glob
import json
import math
import os
import os.path as osp
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from typing import Dict, List

import torch
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(REPO, 'benchmarks', 'configs')
TASKS = ('cls', 'seg')


def config_path(task: str, device: str) -> str:
    """The run config of ``task`` on ``device`` ('cuda' or 'cpu')."""
    return osp.join(CONFIGS, f'ddp_{task}' + ('_cpu' if device == 'cpu' else '') + '.py')


def make_data(task: str, root: str, batch: int, size: int) -> str:
    """The toy dataset for ``task`` with 4 global batches of 2N per epoch; returns its root."""
    if task == 'cls':
        from mmmobilemamba.datasets.toy_classification import make_toy_imagenet
        if not osp.isfile(osp.join(root, 'meta', 'train.txt')):
            make_toy_imagenet(root, num_classes=4, train_per_class=2 * batch,
                              val_per_class=max(2, batch // 8), size=size)
        return root
    from mmmobilemamba.datasets.toy_segmentation import make_toy_ade
    data_root = osp.join(root, 'ADEChallengeData2016')
    if not osp.isdir(data_root):
        make_toy_ade(root, num_train=8 * batch, num_val=2, size=size)
    return data_root


# ------------------------------------------------------------------------ running
def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def launch(cfg: str, options: List[str], work_dir: str, devices: int, device: str, amp: bool,
           timeout: float) -> dict:
    """Run one training of ``cfg`` with ``--cfg-options options`` (torchrun for 2 devices),
    its console output in ``work_dir``/stdout.log."""
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()))
    if device == 'cuda':
        env.setdefault('TRITON_CACHE_DIR', osp.join(osp.dirname(work_dir), 'triton-cache'))
        if devices == 1:
            env['CUDA_VISIBLE_DEVICES'] = env.get('CUDA_VISIBLE_DEVICES', '0').split(',')[0]
    else:
        env['OMP_NUM_THREADS'] = '1'
        env['CUDA_VISIBLE_DEVICES'] = ''
    extra = ['--work-dir', work_dir] + (['--amp'] if amp else []) + ['--cfg-options'] + options
    if devices == 1:
        cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), cfg] + extra
    else:
        cmd = ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), cfg, str(devices)] + extra
    cache = env.get('TRITON_CACHE_DIR')
    cached = len(glob.glob(osp.join(cache, '*'))) if cache else 0
    os.makedirs(work_dir, exist_ok=True)
    start = time.time()
    with open(osp.join(work_dir, 'stdout.log'), 'w') as out:
        # its own process group, so that a timeout also ends torchrun's workers
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = 'timeout'
    result = dict(returncode=rc, wall_s=round(time.time() - start, 1), devices=devices,
                  cmd=' '.join(cmd), started=time.strftime('%H:%M:%S', time.localtime(start)),
                  stdout=out.name)
    if cache:  # kernels compiled by this run (both ranks share the cache)
        result['triton_new_cache_entries'] = len(glob.glob(osp.join(cache, '*'))) - cached
    return result


def read_run(work_dir: str, global_batch: int, warmup: int) -> dict:
    """Per-iteration losses and timing from the run's scalars.json, its log and checkpoint."""
    scalars = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    logs = sorted(glob.glob(osp.join(work_dir, '2*', '2*.log')))
    out = dict(losses={}, times={}, log=logs[-1] if logs else None)
    if scalars:
        with open(scalars[-1]) as f:
            for line in f:
                entry = json.loads(line)
                if 'loss' in entry and 'iter' in entry:
                    out['losses'][entry['iter']] = entry['loss']
                    out['times'][entry['iter']] = entry['time']
    if out['log']:
        with open(out['log']) as f:
            text = f.read()
        world = re.search(r'GPU number: (\d+)', text)
        out['world_size'] = int(world.group(1)) if world else None
        metrics = re.findall(r'(?:accuracy/top1|mIoU): ([0-9.]+)', text)
        out['val_metric'] = float(metrics[-1]) if metrics else None
    ckpts = sorted(glob.glob(osp.join(work_dir, 'iter_*.pth')))
    out['checkpoint'] = ckpts[-1] if ckpts else None
    steady = [t for i, t in out['times'].items() if i > warmup]
    if steady:
        out['median_s_per_iter'] = statistics.median(steady)
        out['img_per_s'] = global_batch / out['median_s_per_iter']
    return out


# ------------------------------------------------------------------------ checks
def build_model(cfg_path: str) -> torch.nn.Module:
    """The run's model from its config, as the Runner builds it (task scope, preprocessor)."""
    from mmengine.registry import MODELS, init_default_scope

    import mmmobilemamba  # noqa: F401  (registers our modules)
    cfg = Config.fromfile(cfg_path, import_custom_modules=False)
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor'):
        model_cfg.setdefault('data_preprocessor', copy.deepcopy(cfg.data_preprocessor))
    return MODELS.build(model_cfg)


def weights_diff(ckpt_a: str, ckpt_b: str) -> dict:
    """Relative (whole model) and max absolute difference of two checkpoints' weights."""
    from mmmobilemamba.utils import read_checkpoint  # weights_only, MMEngine's types allowed
    sd_a = read_checkpoint(ckpt_a)['state_dict']
    sd_b = read_checkpoint(ckpt_b)['state_dict']
    if sd_a.keys() != sd_b.keys():
        return dict(error=f'different keys: {sorted(sd_a.keys() ^ sd_b.keys())[:5]}')
    num = den = max_abs = 0.0
    for key, a in sd_a.items():
        if not a.is_floating_point() or 'num_batches_tracked' in key:
            continue
        d = (a.double() - sd_b[key].double())
        num += d.pow(2).sum().item()
        den += a.double().pow(2).sum().item()
        max_abs = max(max_abs, d.abs().max().item())
    return dict(rel_err=(num / den) ** 0.5, max_abs=max_abs)


def check_checkpoint(cfg_path: str, ckpt: str, device: str) -> dict:
    """Load rank 0's checkpoint strictly on the CPU (and GPU 0), compare one forward pass."""
    from mmengine.runner import load_checkpoint
    result = {}
    x = torch.rand(2, 3, 64, 64) * 255
    outs = {}
    for dev in ['cpu'] + (['cuda:0'] if device == 'cuda' and torch.cuda.is_available() else []):
        try:
            model = build_model(cfg_path).to(dev).eval()
            load_checkpoint(model, ckpt, map_location=dev, strict=True, logger='silent')
            with torch.no_grad():
                inputs = model.data_preprocessor(dict(inputs=list(x.to(dev))))['inputs']
                out = model(inputs, mode='tensor')
            outs[dev] = (out[0] if isinstance(out, (list, tuple)) else out).float().cpu()
            result[f'loads_{dev}'] = bool(torch.isfinite(outs[dev]).all())
        except Exception as e:  # reported in the table, not fatal to the other checks
            result[f'loads_{dev}'] = f'{type(e).__name__}: {e}'[:300]
    if len(outs) == 2:
        a, b = outs.values()
        result['cpu_vs_gpu_max_abs'] = (a - b).abs().max().item()
    return result


def compare(a: dict, b: dict) -> dict:
    """Per-iteration loss differences of two runs over their common iterations."""
    common = sorted(set(a['losses']) & set(b['losses']))
    if not common:
        return dict(iters=0)
    abs_d = [abs(a['losses'][i] - b['losses'][i]) for i in common]
    rel_d = [d / max(abs(a['losses'][i]), 1e-12) for d, i in zip(abs_d, common)]
    return dict(iters=len(common), first_abs=abs_d[0], max_abs=max(abs_d), max_rel=max(rel_d),
                finite=all(math.isfinite(r['losses'][i]) for i in common for r in (a, b)))


# ------------------------------------------------------------------------ main
def run_task(task: str, args: argparse.Namespace, deadline: float) -> dict:
    """Runs a, b (and c) of ``task`` and their comparison."""
    cfg = config_path(task, args.device)
    cfg_values = Config.fromfile(cfg)
    batch, size, iters = cfg_values.train_dataloader.batch_size, cfg_values.size, cfg_values.iters
    root = osp.join(args.work_dir, 'data', f'{task}_{batch}x{size}')
    data_root = make_data(task, root, batch, size)
    data_options = [f'{split}.dataset.data_root={data_root}'
                    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    amp = args.device == 'cuda' and not args.no_amp
    runs = [('a', 1, 2 * batch), ('b', args.gpus, batch)]
    if args.baseline:
        runs.append(('c', 1, batch))
    report = dict(task=task, batch_per_device=batch, size=size, iters=iters, amp=amp, runs={})
    for name, devices, per_device in runs:
        remaining = deadline - time.time()
        done = [r['wall_s'] for r in report['runs'].values()]
        if name == 'c' and remaining < 1.2 * max(done):  # a and b always run
            report['runs'][name] = dict(skipped=f'{remaining:.0f} s left of --time-budget')
            continue
        work_dir = osp.join(args.work_dir, f'{task}_{name}')
        options = data_options + [f'train_dataloader.batch_size={per_device}']
        result = launch(cfg, options, work_dir, devices, args.device, amp, max(remaining, 90))
        result.update(read_run(work_dir, devices * per_device, args.warmup))
        # the config as the run used it, written by the Runner (options merged)
        result.update(config=osp.join(work_dir, osp.basename(cfg)),
                      global_batch=devices * per_device, batch_per_device=per_device)
        report['runs'][name] = result
        print(f'[ddp_check] {task} {name}: {devices} device(s) x batch {per_device}: '
              f'rc={result["returncode"]}, {result["wall_s"]} s, '
              f'{len(result["losses"])} iterations logged', flush=True)
    a, b = report['runs']['a'], report['runs']['b']
    report['a_vs_b'] = compare(a, b) if a.get('losses') and b.get('losses') else {}
    if a.get('checkpoint') and b.get('checkpoint'):
        report['a_vs_b']['weights'] = weights_diff(a['checkpoint'], b['checkpoint'])
    if b.get('checkpoint'):
        report['rank0_checkpoint'] = check_checkpoint(b['config'], b['checkpoint'], args.device)
    c = report['runs'].get('c', {})
    if b.get('img_per_s'):
        for ref_name, ref in (('a', a), ('c', c)):
            if ref.get('img_per_s'):
                report[f'scaling_b_over_{ref_name}'] = b['img_per_s'] / ref['img_per_s']
    return report


def fmt(value, spec: str = '.4g') -> str:
    return '-' if value is None else format(value, spec) if isinstance(value, float) else str(value)


def print_table(reports: List[Dict]) -> None:
    print('\n| task | run | devices x batch | rc | iters | loss first / last | s/iter (median) '
          '| img/s | val | Triton new |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for rep in reports:
        for name, r in rep['runs'].items():
            if 'skipped' in r:
                print(f'| {rep["task"]} | {name} | skipped: {r["skipped"]} |||||||| |')
                continue
            losses = [r['losses'][k] for k in sorted(r['losses'], key=int)]  # JSON: str keys
            first_last = f'{losses[0]:.4f} / {losses[-1]:.4f}' if losses else '-'
            print(f'| {rep["task"]} | {name} | {r["devices"]} x {r["batch_per_device"]} '
                  f'| {r["returncode"]} | {len(losses)} | {first_last} '
                  f'| {fmt(r.get("median_s_per_iter"))} | {fmt(r.get("img_per_s"), ".1f")} '
                  f'| {fmt(r.get("val_metric"))} | {fmt(r.get("triton_new_cache_entries"))} |')
    print()
    for rep in reports:
        cmp_ = rep.get('a_vs_b', {})
        w = cmp_.get('weights', {})
        ck = rep.get('rank0_checkpoint', {})
        n = rep['batch_per_device']
        print(f'{rep["task"]}: a (1 x {2 * n}) vs b (2 x {n}), amp={rep["amp"]}: '
              f'{cmp_.get("iters", 0)} iterations, |dloss| first '
              f'{fmt(cmp_.get("first_abs"), ".3g")}, max {fmt(cmp_.get("max_abs"), ".3g")} '
              f'(rel {fmt(cmp_.get("max_rel"), ".3g")}), finite={cmp_.get("finite")}; final '
              f'weights rel err {fmt(w.get("rel_err"), ".3g")}, max abs '
              f'{fmt(w.get("max_abs"), ".3g")}; scaling b/c '
              f'{fmt(rep.get("scaling_b_over_c"), ".3f")}, b/a '
              f'{fmt(rep.get("scaling_b_over_a"), ".3f")}; rank-0 checkpoint: '
              + ', '.join(f'{k}={fmt(v, ".3g")}' for k, v in ck.items()))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', choices=['cuda', 'cpu'], default='cuda',
                        help='cuda: the ddp_*.py configs; cpu: the ddp_*_cpu.py ones')
    parser.add_argument('--tasks', nargs='+', choices=sorted(TASKS), default=['cls', 'seg'])
    parser.add_argument('--gpus', type=int, default=2, help='devices of run b')
    parser.add_argument('--warmup', type=int, default=10,
                        help='iterations left out of the throughput')
    parser.add_argument('--baseline', action=argparse.BooleanOptionalAction, default=None,
                        help='also run c: 1 device with batch N (default: on for cuda)')
    parser.add_argument('--no-amp', action='store_true', help='fp32 on GPUs')
    parser.add_argument('--time-budget', type=float, default=0,
                        help='seconds; runs that would not fit are skipped (0: no limit)')
    parser.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'ddp_check'))
    parser.add_argument('--summary', help='write every number as JSON here')
    parser.add_argument('--copy-logs', metavar='DIR',
                        help="copy each run's log here as TASK_RUN.log (its console output "
                        'instead when it failed)')
    parser.add_argument('--report', nargs='+', metavar='JSON',
                        help='only print the table of earlier --summary files')
    args = parser.parse_args()
    if args.report:
        return args
    if args.device == 'cuda' and torch.cuda.device_count() < args.gpus:
        parser.error(f'--device cuda needs {args.gpus} GPUs, found {torch.cuda.device_count()};'
                     ' use --device cpu for the gloo/CPU check')
    if args.baseline is None:
        args.baseline = args.device == 'cuda'
    args.work_dir = osp.abspath(args.work_dir)
    return args


def copy_logs(reports: List[Dict], out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    for rep in reports:
        for name, r in rep['runs'].items():
            src = r.get('log') if r.get('returncode') == 0 else r.get('stdout')
            if src and osp.isfile(src):
                shutil.copy(src, osp.join(out_dir, f'{rep["task"]}_{name}.log'))


def main() -> None:
    args = parse_args()
    if args.report:
        reports = []
        for path in args.report:
            with open(path) as f:
                reports += json.load(f)
        print_table(reports)
        return
    deadline = time.time() + (args.time_budget or 1e9)
    reports = [run_task(task, args, deadline) for task in args.tasks]
    if args.summary:
        with open(args.summary, 'w') as f:
            json.dump(reports, f, indent=1, default=str)
    if args.copy_logs:
        copy_logs(reports, args.copy_logs)
    print_table(reports)


if __name__ == '__main__':
    main()
