"""The ADE20K segmentation configs on MobileMamba-B4 (DeepLabv3, Semantic FPN, PSPNet):
parameters, FLOPs and wiring against the paper (Tab. 6/A8), the optimiser and schedule, the
backbone checkpoint given as model.backbone.init_cfg.checkpoint, and the toy configs."""
import functools
import math
import os.path as osp
import warnings
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from mmmobilemamba.analysis import count_flops
from mmmobilemamba.datasets.toy_segmentation import TOY_CLASSES

CONFIGS = str(Path(__file__).resolve().parents[2] / 'configs' / 'segmentation')
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
        warnings.simplefilter('ignore')  # mmengine's pkg_resources deprecation
        return Config.fromfile(osp.join(CONFIGS, name))


def as_printed(value: float, paper: float) -> bool:
    """The paper prints one decimal, rounded for some models and truncated for others."""
    return any(math.isclose(v, paper) for v in (round(value, 1), math.floor(value * 10) / 10))


pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def segmentors(build_model):
    """Each method's segmentor in eval mode, without the auxiliary head: the paper counts
    without it (as mmseg's get_flops.py does)."""
    models = {}
    for method in METHODS:
        model = build_model(load_cfg(f'{method}_mobilemamba_b4.py'))
        model.auxiliary_head = None
        models[method] = model.eval()
    return models


@pytest.mark.parametrize('method', METHODS)
def test_params_match_paper(segmentors, method, n_params):
    model = segmentors[method]
    params = n_params(model)
    backbone = n_params(model.backbone)
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
    (4.710G / 5.647G / 4.539G, configs/segmentation/README.md) at a third of the cost."""
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


def test_backbone_checkpoint_is_a_config_key_not_an_environment_variable(monkeypatch):
    """Parsing reads no environment and warns about no weights (the backbone does, when
    training starts without them); --cfg-options sets the checkpoint like any key."""
    monkeypatch.setenv('MOBILEMAMBA_B4_CKPT', '/ckpts/ignored.pth')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        cfg = Config.fromfile(osp.join(CONFIGS, 'fpn_mobilemamba_b4.py'))
    assert not [w for w in caught if 'weights' in str(w.message).lower()]
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint=None)
    cfg.merge_from_dict({'model.backbone.init_cfg.checkpoint': '/ckpts/mobilemamba_b4.pth'})
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained',
                                               checkpoint='/ckpts/mobilemamba_b4.pth')


@pytest.mark.parametrize('method', METHODS)
def test_toy_config(method):
    cfg = load_cfg(f'{method}_mobilemamba_b4_toy.py')
    heads = [cfg.model.decode_head] + ([cfg.model.auxiliary_head] if method != 'fpn' else [])
    assert all(h.norm_cfg.type == 'BN' and h.num_classes == 4 for h in heads)
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint=None)
    assert cfg.model.backbone.arch == 'b4'
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ds = cfg[split].dataset
        assert ds.data_root == 'data/toy/ade/ADEChallengeData2016'
        assert ds.metainfo.classes == TOY_CLASSES[:4]
