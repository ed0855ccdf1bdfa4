"""ADE20K segmentation on MobileMamba-B4: config wiring against the paper (Tab. 6/A8), the toy
ADE20K generator, toy train/test runs and the missing-dataset message."""
import functools
import math
import os
import os.path as osp
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

from mmmobilemamba.analysis import count_flops
from mmmobilemamba.datasets.toy_segmentation import TOY_CLASSES, make_toy_ade

from conftest import REPO

CONFIGS = osp.join(REPO, 'configs', 'segmentation')
METHODS = ('deeplabv3', 'fpn', 'pspnet')
# paper (params M, FLOPs G at 512x512), and our exact counts without the auxiliary head
PAPER = {'deeplabv3': (23.0, 4.7), 'fpn': (19.8, 5.6), 'pspnet': (20.5, 4.5)}
PARAMS = {'deeplabv3': 22_989_647, 'fpn': 19_758_671, 'pspnet': 20_564_303}
BACKBONE_PARAMS = 16_672_953  # MobileMamba-B4 without its classifier head
# blocks1..3 of B4 at 512x512
FEATURES = ((200, 32), (376, 16), (448, 8))


@functools.lru_cache()
def load_cfg(name: str) -> Config:
    """Parsed once per file (reading mmseg:: bases is slow); callers must not modify it."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the unset-checkpoint warning, tested below
        return Config.fromfile(osp.join(CONFIGS, name))


def build_segmentor(name: str) -> torch.nn.Module:
    from mmseg.registry import MODELS
    cfg = load_cfg(name)
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    model.auxiliary_head = None  # the paper counts without it (as mmseg's get_flops.py)
    return model.eval()


def as_printed(value: float, paper: float) -> bool:
    """The paper prints one decimal, rounded for some models and truncated for others."""
    return any(math.isclose(v, paper) for v in (round(value, 1), math.floor(value * 10) / 10))


pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def segmentors():
    return {m: build_segmentor(f'{m}_mobilemamba_b4.py') for m in METHODS}


@pytest.mark.parametrize('method', METHODS)
def test_params_match_paper(segmentors, method):
    model = segmentors[method]
    params = sum(p.numel() for p in model.parameters())
    backbone = sum(p.numel() for p in model.backbone.parameters())
    assert backbone == BACKBONE_PARAMS
    assert params == PARAMS[method]
    assert as_printed(params / 1e6, PAPER[method][0]), (params, PAPER[method])


@pytest.mark.parametrize('method', METHODS)
def test_wiring(segmentors, method):
    model = segmentors[method]
    assert model.backbone.out_indices == (1, 2, 3) and model.backbone.norm_eval is False
    assert model.decode_head.num_classes == 150
    norms = {type(m).__name__ for m in model.decode_head.modules() if 'Norm' in type(m).__name__}
    assert norms == {'SyncBatchNorm'}
    if method == 'fpn':
        assert model.decode_head.feature_strides == [16, 32, 64]
        assert [c.conv.in_channels for c in model.neck.lateral_convs] == [200, 376, 448]
    else:
        assert (model.decode_head.in_index, model.decode_head.in_channels) == (2, 448)
        aux = load_cfg(f'{method}_mobilemamba_b4.py').model.auxiliary_head
        assert (aux.type, aux.in_index, aux.in_channels) == ('FCNHead', 1, 376)
    side = 8 if method == 'fpn' else 2  # logits at stride 16 (FPN) or 64 (blocks3)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 128, 128), mode='tensor').shape == (1, 150, side, side)


class _Decoder(torch.nn.Module):
    """Neck + decode head of a segmentor, fed backbone features (what _forward does)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.neck = model.neck if model.with_neck else torch.nn.Identity()
        self.decode_head = model.decode_head

    def forward(self, *feats):
        return self.decode_head(self.neck(feats))


def test_flops_match_paper(segmentors):
    """FLOPs at 512x512 = backbone (traced once) + neck/head on B4's feature maps, both with
    count_flops (one multiply-add = one FLOP); the sum equals tracing the whole segmentor
    (4.727G / 5.664G / 4.555G, configs/segmentation/README.md) at a third of the cost."""
    backbone = segmentors['deeplabv3'].backbone
    with torch.no_grad():
        feats = backbone(torch.randn(1, 3, 512, 512))
    assert [(f.shape[1], f.shape[2]) for f in feats] == list(FEATURES)
    backbone_flops, _ = count_flops(backbone, (torch.randn(1, 3, 512, 512), ))
    for method in METHODS:
        head_flops, _ = count_flops(_Decoder(segmentors[method]), feats)
        total = (backbone_flops + head_flops) / 1e9
        paper = PAPER[method][1]
        assert abs(total - paper) / paper < 0.03, (method, total, paper)


def test_optimizer_and_schedule():
    for method in METHODS:
        cfg = load_cfg(f'{method}_mobilemamba_b4.py')
        opt = cfg.optim_wrapper.optimizer
        assert (opt.type, opt.lr, opt.betas, opt.weight_decay) == ('AdamW', 1.2e-4, (0.9, 0.999),
                                                                   0.05)
        assert cfg.train_dataloader.batch_size == 8 and cfg.model.data_preprocessor.size == (
            512, 512)
        warmup, cosine = cfg.param_scheduler
        iters = 160000 if method == 'fpn' else 80000
        assert cfg.train_cfg.max_iters == iters
        assert (warmup.type, warmup.end, warmup.start_factor) == (
            ('LinearLR', 1500, 1e-6) if method == 'fpn' else ('LinearLR', 500, 1e-5))
        assert (cosine.type, cosine.begin, cosine.end, cosine.eta_min) == (
            'CosineAnnealingLR', iters // 2, iters, 0)
        if method == 'fpn':
            assert cfg.optim_wrapper.get('clip_grad') is None
            assert cfg.optim_wrapper.paramwise_cfg.custom_keys == {'head': {'lr_mult': 10.}}
        else:
            assert cfg.optim_wrapper.clip_grad.max_norm == 0.1
        ds = cfg.train_dataloader.dataset
        assert (ds.type, ds.data_root) == ('ADE20KDataset', 'data/ade/ADEChallengeData2016')


def test_pretrained_checkpoint_from_env(monkeypatch):
    monkeypatch.delenv('MOBILEMAMBA_B4_CKPT', raising=False)
    with pytest.warns(UserWarning, match='MOBILEMAMBA_B4_CKPT is not set'):
        cfg = Config.fromfile(osp.join(CONFIGS, 'fpn_mobilemamba_b4.py'))
    assert cfg.model.backbone.init_cfg is None
    monkeypatch.setenv('MOBILEMAMBA_B4_CKPT', '/ckpts/mobilemamba_b4.pth')
    cfg = Config.fromfile(osp.join(CONFIGS, 'fpn_mobilemamba_b4.py'))
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained',
                                               checkpoint='/ckpts/mobilemamba_b4.pth')


@pytest.mark.parametrize('method', METHODS)
def test_toy_config(method):
    cfg = load_cfg(f'{method}_mobilemamba_b4_toy.py')
    heads = [cfg.model.decode_head] + ([cfg.model.auxiliary_head] if method != 'fpn' else [])
    assert all(h.norm_cfg.type == 'BN' and h.num_classes == 4 for h in heads)
    assert cfg.model.backbone.init_cfg is None and cfg.model.backbone.arch == 'b4'
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ds = cfg[split].dataset
        assert ds.data_root == 'data/toy/ade/ADEChallengeData2016'
        assert ds.metainfo.classes == TOY_CLASSES[:4]


def test_toy_ade_layout_and_labels(tmp_path):
    from mmseg.datasets import ADE20KDataset
    init_default_scope('mmseg')  # mmseg's LoadAnnotations, not another library's
    root = make_toy_ade(str(tmp_path), num_train=3, num_val=2, size=64, num_classes=4)
    assert root == osp.join(str(tmp_path), 'ADEChallengeData2016')
    assert len(os.listdir(osp.join(root, 'images', 'training'))) == 3
    assert sorted(os.listdir(osp.join(root, 'annotations', 'validation'))) == [
        'ADE_val_00000001.png', 'ADE_val_00000002.png']
    img = np.array(Image.open(osp.join(root, 'images', 'training', 'ADE_train_00000001.jpg')))
    label = np.array(Image.open(osp.join(root, 'annotations', 'training',
                                         'ADE_train_00000001.png')))
    assert img.shape == (64, 64, 3) and label.shape == (64, 64)
    assert set(np.unique(label)) <= {0, 1, 2, 3, 4} and (label == 0).any()
    # the toy classes are ADE's first ones, so label value k keeps its ADE id k - 1
    assert ADE20KDataset.METAINFO['classes'][:len(TOY_CLASSES)] == TOY_CLASSES
    # same seed, same data
    again = make_toy_ade(str(tmp_path / 'again'), num_train=3, num_val=2, size=64)
    assert (np.array(Image.open(osp.join(again, 'annotations', 'training',
                                         'ADE_train_00000001.png'))) == label).all()


def test_toy_ade_through_mmseg_pipeline(tmp_path):
    """ADE20KDataset + reduce_zero_label maps 0 -> 255 (ignored) and k -> k - 1."""
    from mmseg.datasets import ADE20KDataset
    init_default_scope('mmseg')  # mmseg's LoadAnnotations, not another library's
    root = make_toy_ade(str(tmp_path), num_train=2, num_val=1, size=64)
    ds = ADE20KDataset(
        data_root=root, data_prefix=dict(img_path='images/training',
                                         seg_map_path='annotations/training'),
        metainfo=dict(classes=TOY_CLASSES[:4]),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', reduce_zero_label=True),
                  dict(type='PackSegInputs')])
    assert len(ds) == 2 and ds.metainfo['classes'] == TOY_CLASSES[:4]
    gt = ds[0]['data_samples'].gt_sem_seg.data[0].numpy()
    raw = np.array(Image.open(osp.join(root, 'annotations', 'training',
                                       'ADE_train_00000001.png')))
    assert (gt[raw == 0] == 255).all()
    for k in range(1, 5):
        assert (gt[raw == k] == k - 1).all()


def _env() -> dict:
    """Our repo on the path; one OpenMP thread, as on a busy 2-core CPU several threads per
    process make every training step many times slower."""
    path = os.pathsep.join([REPO] + [p for p in [os.environ.get('PYTHONPATH')] if p])
    return dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS='1')


def test_missing_dataset_message(tmp_path):
    """A real config run from a folder without data/ade stops before building anything."""
    res = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'),
         osp.join(CONFIGS, 'deeplabv3_mobilemamba_b4.py'), '--work-dir', str(tmp_path / 'w')],
        cwd=str(tmp_path), env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode != 0
    for path in ('data/ade/ADEChallengeData2016/images/training',
                 'data/ade/ADEChallengeData2016/annotations/training',
                 'data/ade/ADEChallengeData2016/images/validation',
                 'data/ade/ADEChallengeData2016/annotations/validation'):
        assert path in res.stderr, res.stderr[-3000:]
    assert 'Dataset not found' in res.stderr


METRICS = re.compile(r'aAcc: ([\d.]+)\s+mIoU: ([\d.]+)\s+mAcc: ([\d.]+)')


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    return make_toy_ade(str(tmp_path_factory.mktemp('toy_ade')), num_train=8, num_val=2)


@pytest.mark.slow
@pytest.mark.parametrize('method', METHODS)
def test_toy_train_then_test(toy_root, tmp_path, method):
    """tools/train.py then tools/test.py on the toy config (a few iterations, CPU)."""
    config = osp.join(CONFIGS, f'{method}_mobilemamba_b4_toy.py')
    work = str(tmp_path / 'work')
    roots = [f'{s}_dataloader.dataset.data_root={toy_root}' for s in ('train', 'val', 'test')]
    iters = 2
    subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'), config, '--work-dir', work,
         '--cfg-options', *roots, f'train_cfg.max_iters={iters}', 'train_cfg.val_begin=100',
         'train_dataloader.batch_size=2'],
        cwd=str(tmp_path), env=_env(), check=True, capture_output=True, text=True, timeout=600)
    checkpoint = osp.join(work, f'iter_{iters}.pth')
    assert osp.isfile(checkpoint)
    res = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'test.py'), config, checkpoint,
         '--work-dir', work, '--cfg-options', *roots],
        cwd=str(tmp_path), env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    found = METRICS.findall(res.stdout + res.stderr)
    assert found, (res.stdout + res.stderr)[-3000:]
    aacc, miou, macc = map(float, found[-1])
    print(f'{method} toy ({iters} iters): aAcc {aacc:.2f}  mIoU {miou:.2f}  mAcc {macc:.2f}')
    assert 0 <= miou <= 100 and 0 <= aacc <= 100 and 0 <= macc <= 100
