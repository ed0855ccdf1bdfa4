"""Reliability: exact resume after SIGKILL, checkpoint checks, bad input, NaN loss, soak tool.

Bad-input items of issue 11 tested elsewhere (not repeated here):
  unknown arch, wrong out_indices, frozen_stages -> tests/test_backbone.py::test_bad_arguments_raise
  wrong channels, < 32 px input            -> tests/test_backbone.py::test_bad_input_raises
  missing dataset (seg config, tools/train.py) -> tests/test_segmentation.py
                                              ::test_missing_dataset_message
  unknown / unavailable scan backend (function, env var) -> tests/test_selective_scan.py
  missing backbone keys listed loudly      -> tests/test_checkpoints.py
                                              ::test_missing_and_unexpected_keys_are_listed_loudly
"""
import argparse
import glob
import json
import os
import os.path as osp
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

from mmmobilemamba.datasets.toy_classification import make_toy_imagenet
from mmmobilemamba.models import MobileMamba
from mmmobilemamba.utils import CheckpointError, check_checkpoint_file, check_dataset_paths
from mmmobilemamba.utils.run_config import check_run_checkpoint

from conftest import REPO

CLS_DIR = osp.join(REPO, 'configs', 'classification')
TOY_CFG = osp.join(CLS_DIR, 'mobilemamba_t2_8xb128_in1k_toy.py')
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
TINY = dict(embed_dims=[32, 48, 64], depths=[1, 1, 1], global_ratios=[0.8, 0.7, 0.6],
            local_ratios=[0.2, 0.2, 0.3], kernel_sizes=[7, 5, 3], ssm_ratio=2)


pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def toy_data(tmp_path_factory) -> str:
    """Toy ImageNet: 4 classes x (2 train + 2 val) images of 32 px."""
    root = str(tmp_path_factory.mktemp('toy') / 'imagenet')
    make_toy_imagenet(root, num_classes=4, train_per_class=2, val_per_class=2, size=32)
    return root


def run_tool(*args, timeout=300, check=True) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def data_root_options(root: str) -> list:
    return [f'{loader}.dataset.data_root={root}' for loader in LOADERS]


def toy_cfg(data_root: str, work_dir: str) -> Config:
    cfg = Config.fromfile(TOY_CFG)
    for loader in LOADERS:
        cfg[loader].dataset.data_root = data_root
    cfg.train_dataloader.batch_size = 2
    cfg.work_dir = work_dir
    return cfg


# ----------------------------------------------------------------- exact resume (SIGKILL)
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
def test_resume_after_sigkill_is_bitwise_exact(toy_data, tmp_path):
    """The toy T2 recipe (RandAugment, Mixup/CutMix, EMA, AdamW, warm-up + cosine) as a
    8-iteration run, killed with SIGKILL once its first checkpoint exists, resumed with
    ``--resume`` and run to the end, ends with bitwise the same weights, EMA weights and
    optimizer state as an uninterrupted run (CPU, ``deterministic=True``,
    ``num_workers=0``). That needs our ``RandomStateHook`` (in the classification base
    config): MMEngine re-seeds a resumed run, so without it augmentation and Mixup draw
    other numbers after the resume point and the weights differ."""
    cfg = tmp_path / 'resume_cfg.py'
    cfg.write_text(RESUME_CFG.format(base=TOY_CFG, data_root=toy_data))
    full, killed = tmp_path / 'full', tmp_path / 'killed'
    env = dict(os.environ, OMP_NUM_THREADS='1')

    def train(work_dir, *extra):
        with open(f'{work_dir}.log', 'a') as log:  # a file: a full pipe would stall the run
            return subprocess.Popen(
                [sys.executable, 'tools/train.py', str(cfg), '--work-dir', str(work_dir),
                 *extra], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)

    def log_of(work_dir) -> str:
        with open(f'{work_dir}.log') as f:
            return f.read()

    reference = train(full)  # runs beside the victim; each uses one thread
    victim = train(killed)
    # mmengine writes `last_checkpoint` after the checkpoint file is complete
    marker, deadline = killed / 'last_checkpoint', time.monotonic() + 240
    while not marker.exists():
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
    def process(self, data_batch, data_samples) -> None:
        self.results.extend(p == t for p, t in data_samples)

    def compute_metrics(self, results) -> dict:
        return dict(acc=sum(results) / len(results))


def dropout_runner(work_dir, name: str, hook: bool, **kwargs) -> Runner:
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
    """In-process version of the test above, with and without the hook: resuming at
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


# -------------------------------------------------------------------- checkpoint checks
def save_truncated(src: str, dst: str) -> str:
    with open(src, 'rb') as f:
        data = f.read()
    with open(dst, 'wb') as f:
        f.write(data[:len(data) // 2])
    return dst


def test_checkpoint_file_problems_are_named(tmp_path):
    good = str(tmp_path / 'good.pth')
    torch.save({'state_dict': {'w': torch.ones(3)}}, good)
    check_checkpoint_file(good)
    bad = save_truncated(good, str(tmp_path / 'cut.pth'))
    with pytest.raises(CheckpointError, match=r'cut\.pth \(\d+ bytes\) is truncated or not a '
                       r'torch checkpoint \(zip central directory missing\).*Re-download'):
        check_checkpoint_file(bad)
    (tmp_path / 'empty.pth').write_bytes(b'')
    with pytest.raises(CheckpointError, match=r'empty\.pth \(0 bytes\) is empty'):
        check_checkpoint_file(str(tmp_path / 'empty.pth'))
    (tmp_path / 'page.pth').write_bytes(b'<html>Not Found</html>')
    with pytest.raises(CheckpointError, match=r"page\.pth .*starts with b'<htm'"):
        check_checkpoint_file(str(tmp_path / 'page.pth'))
    with pytest.raises(FileNotFoundError, match=r'nope\.pth does not exist'):
        check_checkpoint_file(str(tmp_path / 'nope.pth'))
    check_checkpoint_file('https://example.com/w.pth')  # MMEngine downloads and checks URLs


@pytest.fixture(scope='module')
def toy_runner(toy_data, tmp_path_factory) -> Runner:
    """The toy T2 classifier's runner (built, not trained) for the load_from checks."""
    return Runner.from_cfg(toy_cfg(toy_data, str(tmp_path_factory.mktemp('runner'))))


@pytest.fixture(scope='module')
def checkpoints(toy_runner, tmp_path_factory) -> dict:
    """A matching checkpoint, a truncated one, another model's, a bare backbone, a
    fine-tuning source (1000-class head) and one holding a non-tensor Python object."""
    import torchvision
    root = tmp_path_factory.mktemp('ckpts')
    own = toy_runner.model.state_dict()
    files = dict(good={'state_dict': own, 'meta': {'experiment_name': 'toy_run'}},
                 resnet={'state_dict': torchvision.models.resnet18().state_dict(),
                         'meta': {'experiment_name': 'resnet18_run'}},
                 bare={k[len('backbone.'):]: v for k, v in own.items()
                       if k.startswith('backbone.')},
                 in1k={k: (torch.zeros(1000, *v.shape[1:]) if v.shape[:1] == (4, ) else v)
                       for k, v in own.items()},
                 pickled={'state_dict': own, 'args': argparse.Namespace(lr=1)})
    paths = {}
    for name, obj in files.items():
        paths[name] = str(root / f'{name}.pth')
        torch.save(obj, paths[name])
    paths['cut'] = save_truncated(paths['good'], str(root / 'cut.pth'))
    return paths


# (mode, resume, which checkpoints pass): resume and test need every tensor; load_from
# for fine-tuning accepts another head (the 1000-class source) but not another model.
MODES = [('train', False, {'good', 'in1k'}), ('train', True, {'good'}), ('test', False, {'good'})]


@pytest.mark.parametrize('mode,resume,passing', MODES)
def test_run_checkpoint_check(toy_runner, checkpoints, tmp_path, mode, resume, passing):
    """What tools/train.py (load_from, --resume PATH) and tools/test.py check before the
    runner loads anything."""
    def check(name):
        cfg = Config(dict(load_from=checkpoints[name], resume=resume, work_dir=str(tmp_path)),
                     filename=TOY_CFG)
        check_run_checkpoint(cfg, toy_runner, mode)

    for name in passing:
        check(name)
    with pytest.raises(CheckpointError, match=r'cut\.pth .*is truncated'):
        check('cut')
    with pytest.raises(CheckpointError, match=r'resnet\.pth does not match this ImageClassifier '
                       r'of mobilemamba_t2_8xb128_in1k_toy\.py: (\d+) of \1 keys do not '
                       r"match .*It holds a model with modules \[bn1, conv1, fc, layer1.*run "
                       r"'resnet18_run'"):
        check('resnet')
    with pytest.raises(CheckpointError, match=r'bare\.pth .*bare MobileMamba backbone.*'
                       r'init_cfg'):
        check('bare')
    with pytest.raises(CheckpointError, match=r'pickled\.pth .*weights_only=True.*refuses.*'
                       r'argparse.*does not fall back'):
        check('pickled')
    if 'in1k' not in passing:
        with pytest.raises(CheckpointError, match=r'in1k\.pth .*2 of \d+ keys do not match '
                           r'\(2 with another shape: head\.'):
            check('in1k')


def test_bare_resume_checks_the_latest_checkpoint(toy_runner, checkpoints, tmp_path):
    """``--resume`` without a path takes the work dir's last_checkpoint: checked too."""
    (tmp_path / 'last_checkpoint').write_text(checkpoints['cut'])
    cfg = Config(dict(load_from=None, resume=True, work_dir=str(tmp_path)), filename=TOY_CFG)
    with pytest.raises(CheckpointError, match=r'cut\.pth .*truncated'):
        check_run_checkpoint(cfg, toy_runner, 'train')


@pytest.mark.parametrize('name,msg', [
    ('cut', r'cut\.pth \(\d+ bytes\) is truncated'),
    ('resnet', r'resnet\.pth does not match this MobileMamba backbone: (\d+) of \1 keys do not '
     r'match .*modules \[bn1, conv1'),
    ('pickled', r'pickled\.pth holds Python objects')])
def test_backbone_init_cfg_checks(checkpoints, name, msg):
    model = MobileMamba('t2', init_cfg=dict(type='Pretrained', checkpoint=checkpoints[name]))
    with pytest.raises(CheckpointError, match=msg):
        model.init_weights()


def test_backbone_init_cfg_takes_the_classifier_checkpoint(checkpoints):
    model = MobileMamba('t2', init_cfg=dict(type='Pretrained', checkpoint=checkpoints['good']))
    model.init_weights()
    want = torch.load(checkpoints['good'])['state_dict']
    assert all(torch.equal(v, want[f'backbone.{k}']) for k, v in model.state_dict().items())


@pytest.mark.slow
def test_tools_refuse_bad_checkpoints(toy_data, checkpoints, tmp_path):
    """End to end: tools/train.py --resume PATH and tools/test.py stop before training or
    testing, naming the file, without TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD."""
    env_flag = 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'
    assert env_flag not in os.environ
    res = run_tool('tools/train.py', TOY_CFG, '--work-dir', str(tmp_path / 'w'), '--resume',
                   checkpoints['cut'], '--cfg-options', *data_root_options(toy_data),
                   check=False)
    assert res.returncode != 0 and 'cut.pth' in res.stderr and 'is truncated' in res.stderr, \
        res.stderr[-3000:]
    assert 'Epoch(train)' not in res.stdout + res.stderr
    res = run_tool('tools/test.py', TOY_CFG, checkpoints['resnet'], '--work-dir',
                   str(tmp_path / 't'), '--cfg-options', *data_root_options(toy_data),
                   check=False)
    assert res.returncode != 0 and 'resnet.pth does not match this ImageClassifier' in \
        res.stderr, res.stderr[-3000:]
    for name, message in (('cut', 'cut.pth (.*) is truncated'),
                          ('missing', 'nope.pth does not exist')):
        path = checkpoints['cut'] if name == 'cut' else str(tmp_path / 'nope.pth')
        res = run_tool('tools/test.py', TOY_CFG, path, '--work-dir', str(tmp_path / 't'),
                       '--cfg-options', *data_root_options(toy_data), check=False)
        assert res.returncode != 0 and re.search(message, res.stderr), res.stderr[-3000:]
        assert 'Epoch(test)' not in res.stdout + res.stderr


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize('backend', ['mamba_ssm', 'triton'])
def test_unavailable_scan_backend_in_the_model(backend):
    """A backbone configured with a GPU-only scan backend fails on CPU input, naming the
    backend and the alternative, instead of silently falling back."""
    model = MobileMamba(TINY, scan_backend=backend).eval()
    with pytest.raises(RuntimeError, match=rf"Scan backend '{backend}' .*cannot run here: "
                       r".*backend='chunked'"):
        model(torch.randn(1, 3, 32, 32))


def test_missing_classification_dataset_is_listed(tmp_path):
    """mmpretrain's ImageNet names its folder by ``split``, without data_prefix/ann_file."""
    cfg = toy_cfg(str(tmp_path / 'nowhere'), str(tmp_path / 'w'))
    with pytest.raises(FileNotFoundError) as info:
        check_dataset_paths(cfg, splits=('train_dataloader', 'val_dataloader'))
    msg = str(info.value)
    assert 'Dataset not found' in msg and 'train_dataloader.dataset.data_root=' in msg
    for split in ('train', 'val'):
        assert osp.join(str(tmp_path / 'nowhere'), split) in msg


def corrupt_copy(toy_data: str, dst: str, kind: str) -> str:
    """A copy of the toy set with one training image broken; returns that image's path."""
    shutil.copytree(toy_data, dst)
    bad = sorted(glob.glob(osp.join(dst, 'train', '*', '*.jpg')))[3]
    with open(bad, 'rb') as f:
        data = f.read()
    with open(bad, 'wb') as f:
        f.write(b'\x00garbage, not a JPEG\xff' * 20 if kind == 'garbage' else data[:60])
    return bad


@pytest.mark.slow
@pytest.mark.parametrize('workers,kind', [(0, 'garbage'), (1, 'header_cut')])
def test_corrupt_training_image_is_reported_by_name(toy_data, tmp_path, workers, kind):
    """Garbage bytes or a JPEG cut inside its header: the toy training stops with mmcv's
    'failed to load image: <path>' (in the main process or from the DataLoader worker),
    within the subprocess timeout, i.e. no hang."""
    root = str(tmp_path / 'data')
    bad = corrupt_copy(toy_data, root, kind)
    res = run_tool('tools/train.py', TOY_CFG, '--work-dir', str(tmp_path / 'w'),
                   '--cfg-options', 'train_cfg.max_epochs=2', 'train_dataloader.batch_size=2',
                   f'train_dataloader.num_workers={workers}', *data_root_options(root),
                   timeout=240, check=False)
    assert res.returncode != 0
    assert f'failed to load image: {bad}' in res.stderr, res.stderr[-3000:]
    if workers:
        assert 'DataLoader worker process 0' in res.stderr


def test_jpeg_cut_inside_the_image_data_decodes_partially(toy_data, tmp_path):
    """The limit of mmcv's convention: OpenCV (the pipelines' decoder) decodes a JPEG cut
    after its header without any error or warning, filling the missing part; such a file
    trains silently. docs/get_started.md (Failure modes) says how to find them."""
    from mmcv.transforms import LoadImageFromFile
    path = sorted(glob.glob(osp.join(toy_data, 'train', '*', '*.jpg')))[0]
    cut = str(tmp_path / 'cut.jpg')
    with open(path, 'rb') as f:
        data = f.read()
    scan = data.index(b'\xff\xda')  # start of the entropy-coded image data
    with open(cut, 'wb') as f:
        f.write(data[:(scan + len(data)) // 2])
    img = LoadImageFromFile()(dict(img_path=cut))['img']
    assert img.shape == (32, 32, 3)
    from PIL import Image
    with pytest.raises(OSError, match='truncated'):
        Image.open(cut).load()


# ----------------------------------------------------------------------------- NaN loss
class TwoLosses(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, inputs, labels=None, mode='loss'):
        logits = self.fc(inputs)
        return dict(loss_cls=nn.functional.cross_entropy(logits, labels),
                    loss_reg=torch.tensor(0.5))


def test_nan_loss_stops_training_naming_iteration(tmp_path):
    """Sample 4 holds a NaN, so the 3rd batch (of 2, unshuffled) yields a NaN loss_cls:
    training stops at iteration 3, epoch 1, batch 3, before any checkpoint of it."""
    data = [dict(inputs=torch.full((4, ), float('nan')) if i == 4 else torch.randn(4),
                 labels=torch.tensor(i % 2)) for i in range(8)]
    runner = Runner(
        model=TwoLosses(), work_dir=str(tmp_path), experiment_name='nan_run',
        train_dataloader=dict(dataset=data, batch_size=2, collate_fn=dict(type='default_collate'),
                              sampler=dict(type='DefaultSampler', shuffle=False)),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False)),
        custom_hooks=[dict(type='CheckFiniteLossHook')])
    with pytest.raises(RuntimeError) as info:
        runner.train()
    msg = str(info.value)
    assert msg.startswith('Non-finite loss at training iteration 3/8 (epoch 1/2, batch 3/4): ')
    assert 'loss_cls=nan' in msg and 'loss=nan' in msg and 'finite: loss_reg=0.5' in msg
    assert 'lower learning rate' in msg and '--amp' in msg and 'check the data' in msg
    assert (tmp_path / 'iter_2.pth').exists() and not (tmp_path / 'iter_3.pth').exists()


def test_huge_lr_toy_training_stops_with_the_message(toy_data, tmp_path):
    """The toy T2 recipe at lr 1e30: the hook from the classification base config stops it
    at the first NaN loss (iteration 2 with this seed) instead of training on."""
    cfg = toy_cfg(toy_data, str(tmp_path))
    cfg.optim_wrapper.optimizer.lr = 1e30
    cfg.train_cfg.max_epochs = 2
    with pytest.raises(RuntimeError, match=r'^Non-finite loss at training iteration \d/8 '
                       r'\(epoch 1/2, batch \d/4\): loss=nan'):
        Runner.from_cfg(cfg).train()


def test_interval_must_be_positive():
    from mmmobilemamba.engine.hooks import CheckFiniteLossHook
    with pytest.raises(ValueError, match='interval must be >= 1'):
        CheckFiniteLossHook(interval=0)


@pytest.mark.parametrize('rel', [
    'classification/mobilemamba_t2_8xb128_in1k.py',
    'classification/mobilemamba_t2_8xb128_in1k_toy.py',
    'classification/mobilemamba_t2_8xb128_in1k_kd-1000e_toy.py',
    'detection/retinanet_mobilemamba_b1_toy.py', 'detection/mask-rcnn_mobilemamba_b1_toy.py',
    'detection/ssdlite_mobilemamba_b1_512_toy.py', 'segmentation/fpn_mobilemamba_b4_toy.py',
    'segmentation/deeplabv3_mobilemamba_b4_toy.py', 'segmentation/pspnet_mobilemamba_b4_toy.py'])
def test_training_configs_check_the_loss(rel):
    cfg = Config.fromfile(osp.join(REPO, 'configs', rel))
    assert cfg.default_hooks.check_finite_loss.type == 'CheckFiniteLossHook'
    assert cfg.default_hooks.random_state.type == 'RandomStateHook'


# --------------------------------------------------------------------------------- soak
@pytest.mark.slow
def test_soak_tool_reports_rss_and_metric(toy_data, tmp_path):
    out = tmp_path / 'soak.json'
    run_tool('tools/analysis/soak.py', '--cycles', '3', '--warmup-cycles', '1', '--data-root',
             toy_data, '--work-dir', str(tmp_path / 'w'), '--out', str(out),
             '--cfg-options', 'train_dataloader.batch_size=2')
    result = json.loads(out.read_text())
    records, s = result['records'], result['summary']
    assert [r['cycle'] for r in records] == [1, 2, 3]
    assert [r['iter'] for r in records] == [4, 8, 12]  # 8 images / 2 per batch per cycle
    assert all(r['metric_name'] == 'accuracy/top1' and 0 <= r['metric'] <= 100
               for r in records)
    assert all(200 < r['rss_mb'] < 20000 for r in records)
    assert s['cycles'] == 3 and s['rss_start_mb'] == records[0]['rss_mb']
    assert s['rss_growth_mb'] == pytest.approx(records[-1]['rss_mb'] - records[0]['rss_mb'])
    assert s['rss_mb_per_cycle_after_warmup'] == pytest.approx(
        records[2]['rss_mb'] - records[1]['rss_mb'])  # two points after warm-up: their slope
    assert s['metric_drift_after_warmup'] == pytest.approx(
        records[2]['metric'] - records[1]['metric'])
    assert result['settings']['train_images'] == 8 and result['settings']['batch_size'] == 2
    assert (tmp_path / 'w' / 'epoch_3.pth').exists()
