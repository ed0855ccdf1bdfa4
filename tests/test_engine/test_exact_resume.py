"""Exact resume: RandomStateHook saves and restores the Python, NumPy and torch generators,
so that a run killed with SIGKILL and resumed ends bitwise where an uninterrupted run does
(MMEngine re-seeds a resumed run and restores no generator state)."""
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn


pytestmark = pytest.mark.usefixtures('one_thread')


RESUME_CFG = '''
_base_ = {base!r}
# 32 px crops of the 8-image toy set, 2 images per iteration (4 per epoch), 8 iterations;
# checkpoints and validation every 3, so a kill at any checkpoint lands mid-epoch.
data_root = {data_root!r}
train_pipeline = _base_.train_pipeline
train_pipeline[1].scale = 32
test_pipeline = _base_.test_pipeline
test_pipeline[1].scale = 32
test_pipeline[2].crop_size = 32
train_dataloader = dict(batch_size=2, dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(batch_size=8, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=8, val_interval=3)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, end=4),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=4, end=8, eta_min=1e-5)]
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(by_epoch=False, interval=3, max_keep_ckpts=-1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0, deterministic=True)
'''


def assert_same_tensors(a, b, where: str) -> int:
    """Nested dicts/lists ``a`` and ``b`` equal, tensors bitwise; returns the tensor count."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f'{where} differs (max |diff| ' \
            f'{(a.double() - b.double()).abs().max().item():.3g})'
        return 1
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        return sum(assert_same_tensors(a[k], b[k], f'{where}.{k}') for k in a)
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        return sum(assert_same_tensors(x, y, f'{where}[{i}]') for i, (x, y) in
                   enumerate(zip(a, b)))
    assert a == b, f'{where}: {a!r} != {b!r}'  # e.g. the optimizer's lr and betas
    return 0


@pytest.mark.slow
def test_resume_after_sigkill_is_bitwise_exact(toy_imagenet, toy_cls_config, repo_root, tmp_path):
    """The toy T2 recipe (RandAugment, Mixup/CutMix, EMA, AdamW, warm-up + cosine) as a
    8-iteration run, killed with SIGKILL once its first checkpoint exists, resumed with
    ``--resume`` and run to the end, ends with bitwise the same weights, EMA weights and
    optimizer state as an uninterrupted run (CPU, ``deterministic=True``,
    ``num_workers=0``). That needs our ``RandomStateHook`` (in the classification base
    config): MMEngine re-seeds a resumed run, so without it augmentation and Mixup draw
    other numbers after the resume point and the weights differ."""
    cfg = tmp_path / 'resume_cfg.py'
    cfg.write_text(RESUME_CFG.format(base=toy_cls_config, data_root=toy_imagenet))
    full, killed = tmp_path / 'full', tmp_path / 'killed'
    env = dict(os.environ, OMP_NUM_THREADS='1')

    def train(work_dir, *extra):
        with open(f'{work_dir}.log', 'a') as log:  # a file: a full pipe would stall the run
            return subprocess.Popen(
                [sys.executable, 'tools/train.py', str(cfg), '--work-dir', str(work_dir),
                 *extra], cwd=repo_root, env=env, stdout=log, stderr=subprocess.STDOUT)

    def log_of(work_dir) -> str:
        with open(f'{work_dir}.log') as f:
            return f.read()

    reference = train(full)  # runs beside the victim; each uses one thread
    victim = train(killed)
    # mmengine writes `last_checkpoint` after the checkpoint file is complete; the file can
    # exist a moment before its text is written
    marker, deadline = killed / 'last_checkpoint', time.monotonic() + 240
    while not (marker.exists() and 'iter_' in marker.read_text()):
        assert victim.poll() is None, log_of(killed)[-3000:]
        assert time.monotonic() < deadline, 'no checkpoint within 240 s'
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert not (killed / 'iter_8.pth').exists()
    resumed_from = int(marker.read_text().rsplit('iter_', 1)[1].split('.')[0])
    assert resumed_from in (3, 6)

    assert reference.wait(timeout=300) == 0, log_of(full)[-3000:]
    open(f'{killed}.log', 'w').close()
    assert train(killed, '--resume').wait(timeout=300) == 0, log_of(killed)[-3000:]
    assert f'resumed epoch: 0, iter: {resumed_from}' in log_of(killed)

    a = torch.load(full / 'iter_8.pth', map_location='cpu')  # weights_only=True
    b = torch.load(killed / 'iter_8.pth', map_location='cpu')
    assert a['meta']['iter'] == b['meta']['iter'] == 8
    counts = {key: assert_same_tensors(a[key], b[key], key)
              for key in ('state_dict', 'ema_state_dict', 'optimizer')}
    assert counts['state_dict'] == len(a['state_dict']) > 500
    assert counts['optimizer'] > counts['state_dict']  # AdamW: two moments per parameter


class NoisyPairs(torch.utils.data.Dataset):
    """Random augmentation from NumPy and Python's generators, as real pipelines do."""

    def __init__(self, n: int = 8) -> None:
        self.x = torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        noise = torch.from_numpy(np.random.normal(0, 0.3, (3, 8, 8))).float()
        return dict(inputs=torch.roll(self.x[i] + noise, random.randint(0, 3), -1),
                    labels=torch.tensor(i % 2))


class DropoutNet(BaseModel):
    """Dropout draws from torch's generator."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten(), nn.Dropout(0.5), nn.Linear(8, 2))

    def forward(self, inputs, labels=None, mode='loss'):
        logits = self.net(inputs)
        if mode == 'loss':
            return dict(loss=nn.functional.cross_entropy(logits, labels))
        return [(lg.argmax().item(), lb.item()) for lg, lb in zip(logits, labels)]


class PairAccuracy(BaseMetric):
    """Share of (prediction, label) pairs that agree."""

    def process(self, data_batch, data_samples) -> None:
        self.results.extend(p == t for p, t in data_samples)

    def compute_metrics(self, results) -> dict:
        return dict(acc=sum(results) / len(results))


def dropout_runner(work_dir, name: str, hook: bool, **kwargs) -> Runner:
    """A 7-iteration run of DropoutNet on NoisyPairs, checkpoints every 2, with or without
    RandomStateHook."""
    loader = dict(dataset=NoisyPairs(), batch_size=2, num_workers=0,
                  collate_fn=dict(type='default_collate'))
    return Runner(
        model=DropoutNet(), work_dir=str(work_dir), experiment_name=name,
        train_dataloader=dict(loader, sampler=dict(type='DefaultSampler', shuffle=True)),
        val_dataloader=dict(loader, sampler=dict(type='DefaultSampler', shuffle=False)),
        val_cfg=dict(), val_evaluator=[PairAccuracy()],
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=7, val_interval=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False)),
        custom_hooks=[dict(type='RandomStateHook')] if hook else [],
        randomness=dict(seed=0, deterministic=True), **kwargs)


@pytest.mark.parametrize('hook', [True, False])
def test_random_state_hook_makes_resume_exact(tmp_path, hook):
    """In-process version of the SIGKILL test, with and without the hook: resuming at
    iteration 4 (mid-epoch, after a validation) of a run whose data, dropout and sampler
    all draw random numbers. Without the hook the resumed run differs: this documents why
    the hook exists (MMEngine 0.10 restores no generator state)."""
    dropout_runner(tmp_path / 'a', f'full{hook}', hook).train()
    ckpt = torch.load(tmp_path / 'a' / 'iter_4.pth')  # weights_only=True
    assert ('random_state' in ckpt) == hook
    dropout_runner(tmp_path / 'b', f'resumed{hook}', hook, resume=True,
                   load_from=str(tmp_path / 'a' / 'iter_4.pth')).train()
    a = torch.load(tmp_path / 'a' / 'iter_7.pth')['state_dict']
    b = torch.load(tmp_path / 'b' / 'iter_7.pth')['state_dict']
    same = all(torch.equal(a[k], b[k]) for k in a)
    assert same == hook
