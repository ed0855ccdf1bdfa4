"""The ImageNet classification configs: one plain, one KD and (for T2) one toy config per
variant that build with the paper's parameter counts, the paper's training recipe, and a KD
recipe that differs from the plain one only in the teacher and the epochs."""
import copy
import functools
import os.path as osp
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from mmmobilemamba.datasets.toy_classification import toy_class_names
from mmmobilemamba.models import MobileMamba

CFG_DIR = Path(__file__).resolve().parents[2] / 'configs' / 'classification'
ARCHS = sorted(MobileMamba.arch_zoo)
RES = MobileMamba.arch_resolution
CONFIGS = sorted(p.name for p in CFG_DIR.glob('mobilemamba_*.py'))
TOY = 'mobilemamba_t2_8xb128_in1k_toy.py'
TOY_KD = 'mobilemamba_t2_8xb128_in1k_kd-1000e_toy.py'


pytestmark = pytest.mark.usefixtures('one_thread')


@functools.lru_cache(maxsize=None)
def _load_cfg(name: str) -> Config:
    return Config.fromfile(osp.join(CFG_DIR, name))


def load_cfg(name: str) -> Config:
    """A config of configs/classification, parsed once per module (a copy each call)."""
    return copy.deepcopy(_load_cfg(name))


def test_every_variant_has_plain_kd_and_toy_configs():
    for arch in ARCHS:
        assert f'mobilemamba_{arch}_8xb128_in1k.py' in CONFIGS
        assert f'mobilemamba_{arch}_8xb128_in1k_kd-1000e.py' in CONFIGS
    assert TOY in CONFIGS and TOY_KD in CONFIGS


@pytest.mark.parametrize('name', CONFIGS)
def test_config_builds_counts_and_forwards(name, build_model, classifier_params, n_params):
    cfg = load_cfg(name)
    assert cfg.default_scope == 'mmpretrain'
    assert cfg.custom_imports == dict(imports=['mmmobilemamba'], allow_failed_imports=False)
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    model = build_model(cfg)
    arch = cfg.model.backbone.arch
    head = cfg.model.head
    # the paper's counts are for a 1000-class head; the toy configs have fewer classes
    expected = classifier_params[arch] - (1000 - head.num_classes) * (head.in_channels + 1)
    assert n_params(model) == expected  # KD: the teacher is not part of the model
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64), mode='tensor')
    assert out.shape == (2, head.num_classes) and torch.isfinite(out).all()


@pytest.mark.parametrize('arch', ARCHS)
def test_config_recipe(arch):
    cfg = load_cfg(f'mobilemamba_{arch}_8xb128_in1k.py')
    res = RES[arch]
    opt = cfg.optim_wrapper
    assert opt.optimizer.lr == 1.5e-3 and opt.optimizer.betas == (0.9, 0.999)
    assert opt.optimizer.weight_decay == 0.05 and opt.clip_grad.max_norm == 5.0
    assert cfg.auto_scale_lr.base_batch_size == 1024 == 8 * cfg.train_dataloader.batch_size
    warmup, cosine = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.end) == ('LinearLR', 1e-3, 20)
    assert (cosine.type, cosine.begin, cosine.eta_min_ratio) == ('CosineAnnealingLR', 20, 0.01)
    assert cfg.train_cfg.max_epochs == 300
    assert cfg.model.backbone.drop_path_rate == (0.03 if arch.startswith('b') else 0.0)
    assert cfg.model.head.loss == dict(type='LabelSmoothLoss', label_smooth_val=0.1,
                                       mode='original')
    assert [a.type for a in cfg.model.train_cfg.augments] == ['Mixup', 'CutMix']
    assert [a.alpha for a in cfg.model.train_cfg.augments] == [0.8, 1.0]
    assert cfg.model.train_cfg.probs == [0.5, 0.5]
    ema, = [h for h in cfg.custom_hooks if h.type == 'EMAHook']
    assert ema.momentum == pytest.approx(1 - 0.9998)
    train = {t.type: t for t in cfg.train_dataloader.dataset.pipeline}
    assert train['RandomResizedCrop'].scale == res
    assert train['RandomResizedCrop'].interpolation == 'bicubic'
    ra = train['RandAugment']
    assert (ra.policies, ra.num_policies, ra.magnitude_level, ra.magnitude_std) == (
        'timm_increasing', 2, 9, 0.5)
    assert train['RandomErasing'].erase_prob == 0.25
    assert 'ColorJitter' not in train  # timm drops color jitter when RandAugment is on
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        assert loader.dataset.type == 'ImageNet'
        assert loader.dataset.data_root == 'data/imagenet'
        test = {t.type: t for t in loader.dataset.pipeline}
        assert test['ResizeEdge'].scale == int(res / 0.875)
        assert (test['ResizeEdge'].edge, test['ResizeEdge'].interpolation) == ('short',
                                                                                 'bicubic')
        assert test['CenterCrop'].crop_size == res


@pytest.mark.parametrize('arch', ARCHS)
def test_kd_config_recipe(arch):
    plain = load_cfg(f'mobilemamba_{arch}_8xb128_in1k.py')
    cfg = load_cfg(f'mobilemamba_{arch}_8xb128_in1k_kd-1000e.py')
    assert cfg.model.type == 'KDImageClassifier' and cfg.train_cfg.max_epochs == 1000
    assert (cfg.model.kd_weight, cfg.model.tau) == (5.0, 1.0)
    teacher = cfg.model.teacher
    assert teacher.type == 'TimmClassifier' and teacher.init_cfg.type == 'Pretrained'
    assert teacher.data_preprocessor.std == [255.] * 3  # TResNet takes [0, 1] inputs
    # everything but the model type, teacher and epochs is the plain recipe
    for key in ('optim_wrapper', 'param_scheduler', 'train_dataloader', 'test_dataloader',
                'custom_hooks', 'auto_scale_lr'):
        assert cfg[key] == plain[key], key
    for key in ('backbone', 'neck', 'head', 'train_cfg'):
        assert cfg.model[key] == plain.model[key], key


def test_toy_config_matches_the_generator():
    cfg = load_cfg(TOY)
    names = toy_class_names(cfg.model.head.num_classes)
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert list(loader.dataset.metainfo.classes) == names
        assert loader.dataset.data_root == 'data/toy/imagenet'
    assert cfg.data_preprocessor.num_classes == len(names)
