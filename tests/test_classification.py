"""ImageNet classification with mmpretrain: the configs (paper recipe, KD, toy), the KD
classifier, loading converted official checkpoints, the toy dataset, and train/test runs."""
import copy
import functools
import glob
import importlib.util
import json
import os
import os.path as osp
import pickle
import re
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from mmengine.runner import load_checkpoint
from mmpretrain.datasets import ImageNet
from mmpretrain.models import ImageClassifier
from mmpretrain.structures import DataSample

from mmmobilemamba.datasets.toy_classification import make_toy_imagenet, toy_class_names
from mmmobilemamba.models import MobileMamba
from mmmobilemamba.models.classifiers import KDImageClassifier

from conftest import FIXTURES, REPO

CFG_DIR = osp.join(REPO, 'configs', 'classification')
PARAMS = {'t2': 8_836_890, 't4': 14_176_090, 's6': 15_036_632, 'b1': 17_122_849,
          'b2': 17_122_849, 'b4': 17_122_849}
RES = MobileMamba.arch_resolution
CONFIGS = sorted(osp.basename(p) for p in glob.glob(osp.join(CFG_DIR, 'mobilemamba_*.py')))
TOY = 'mobilemamba_t2_8xb128_in1k_toy.py'
TOY_KD = 'mobilemamba_t2_8xb128_in1k_kd-1000e_toy.py'
TINY = dict(embed_dims=[32, 48, 64], depths=[1, 1, 1], global_ratios=[0.8, 0.7, 0.6],
            local_ratios=[0.2, 0.2, 0.3], kernel_sizes=[7, 5, 3], ssm_ratio=2)
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


pytestmark = pytest.mark.usefixtures('one_thread')


@functools.lru_cache(maxsize=None)
def _load_cfg(name: str) -> Config:
    return Config.fromfile(osp.join(CFG_DIR, name))


def load_cfg(name: str) -> Config:
    return copy.deepcopy(_load_cfg(name))


def build(cfg: Config) -> torch.nn.Module:
    """Build ``cfg.model`` as the Runner does (top-level data_preprocessor, mmpretrain scope)."""
    model_cfg = copy.deepcopy(cfg.model)  # mmpretrain's RandomBatchAugment extends `probs`
    model_cfg.setdefault('data_preprocessor', copy.deepcopy(cfg.get('data_preprocessor')))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(model_cfg)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def tiny_classifier(cls=ImageClassifier, distillation=False, num_classes=5, **kwargs):
    return cls(backbone=dict(type='MobileMamba', arch=TINY),
               neck=dict(type='GlobalAveragePooling'),
               head=dict(type='BNLinearClsHead', num_classes=num_classes, in_channels=64,
                         distillation=distillation),
               **kwargs)


# ----------------------------------------------------------------------------- configs
def test_every_variant_has_plain_kd_and_toy_configs():
    for arch in PARAMS:
        assert f'mobilemamba_{arch}_8xb128_in1k.py' in CONFIGS
        assert f'mobilemamba_{arch}_8xb128_in1k_kd-1000e.py' in CONFIGS
    assert TOY in CONFIGS and TOY_KD in CONFIGS


@pytest.mark.parametrize('name', CONFIGS)
def test_config_builds_counts_and_forwards(name):
    cfg = load_cfg(name)
    assert cfg.default_scope == 'mmpretrain'
    assert cfg.custom_imports == dict(imports=['mmmobilemamba'], allow_failed_imports=False)
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    model = build(cfg)
    arch = cfg.model.backbone.arch
    head = cfg.model.head
    # the spec's table counts a 1000-class head; the toy configs have fewer classes
    expected = PARAMS[arch] - (1000 - head.num_classes) * (head.in_channels + 1)
    assert n_params(model) == expected  # KD: the teacher is not part of the model
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64), mode='tensor')
    assert out.shape == (2, head.num_classes) and torch.isfinite(out).all()


@pytest.mark.parametrize('arch', sorted(PARAMS))
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


@pytest.mark.parametrize('arch', sorted(PARAMS))
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


# ------------------------------------------------------------------- KD classifier
def tiny_teacher_cfg(**data_preprocessor) -> dict:
    return dict(type='ImageClassifier', backbone=dict(type='MobileMamba', arch=TINY),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(type='BNLinearClsHead', num_classes=5, in_channels=64),
                data_preprocessor=data_preprocessor or None)


def kd_batch(model, n=4, size=64, num_classes=5) -> dict:
    data = dict(inputs=[torch.randint(0, 256, (3, size, size), dtype=torch.uint8)
                        for _ in range(n)],
                data_samples=[DataSample().set_gt_label(i % num_classes) for i in range(n)])
    return model.data_preprocessor(data, training=True)


def test_teacher_inputs_use_the_teachers_normalisation():
    kd = tiny_classifier(KDImageClassifier,
                         teacher=tiny_teacher_cfg(mean=[0.] * 3, std=[255.] * 3, to_rgb=True),
                         data_preprocessor=dict(mean=MEAN, std=STD, to_rgb=True))
    raw_bgr = torch.randint(0, 256, (2, 3, 40, 48), dtype=torch.uint8)
    student_in = kd.data_preprocessor(dict(inputs=raw_bgr))['inputs']
    rgb01 = raw_bgr.flip(1).float() / 255
    torch.testing.assert_close(kd.teacher_inputs(student_in), rgb01, atol=1e-5, rtol=0)
    kd.teacher.data_preprocessor.to_rgb = False  # a BGR teacher gets the channels flipped
    torch.testing.assert_close(kd.teacher_inputs(student_in), rgb01.flip(1), atol=1e-5, rtol=0)
    kd.teacher_input_size = 32
    assert kd.teacher_inputs(student_in).shape == (2, 3, 32, 32)


@pytest.mark.parametrize('distillation', [False, True])
def test_kd_loss_terms_and_gradients(distillation):
    torch.manual_seed(0)
    kd = tiny_classifier(KDImageClassifier, distillation=distillation,
                         teacher=tiny_teacher_cfg(mean=[0.] * 3, std=[255.] * 3, to_rgb=True),
                         kd_weight=5.0, tau=2.0,
                         data_preprocessor=dict(mean=MEAN, std=STD, to_rgb=True))
    kd.train()
    data = kd_batch(kd)
    losses = kd.loss(data['inputs'], data['data_samples'])
    assert set(losses) == {'loss_cls', 'loss_kd'}
    # the teacher stays outside the student: no parameters, state_dict keys or submodules
    assert not any('teacher' in k for k, _ in kd.named_modules())
    assert not any('teacher' in k for k in kd.state_dict())
    assert n_params(kd) == n_params(tiny_classifier(distillation=distillation))
    assert not kd.teacher.training
    assert not any(p.requires_grad for p in kd.teacher.parameters())
    # loss_kd = w * tau^2 * KL(teacher || student), summed over classes, batch mean
    with torch.no_grad():
        logits = kd.head(kd.extract_feat(data['inputs']))
        s = logits[1] if distillation else logits
        t = kd.teacher(kd.teacher_inputs(data['inputs']), mode='tensor')
        p_t = t.div(2.0).softmax(1)
        kl = (p_t * (p_t.log() - s.div(2.0).log_softmax(1))).sum(1).mean()
    torch.testing.assert_close(losses['loss_kd'], 5.0 * 4.0 * kl, rtol=1e-4, atol=1e-7)
    cls_w = kd.head.head.l.weight
    kd.zero_grad()
    losses['loss_kd'].backward(retain_graph=True)
    assert kd.backbone.patch_embed[0].c.weight.grad.abs().sum() > 0
    if distillation:  # DeiT: the dist head learns from the teacher, the class head does not
        assert cls_w.grad is None or not cls_w.grad.any()
        kd.zero_grad()
        losses['loss_cls'].backward()
        dist_w = kd.head.head_dist.l.weight
        assert dist_w.grad is None or not dist_w.grad.any()
        assert cls_w.grad.abs().sum() > 0
    else:  # the reference recipe: one head learns from both
        assert cls_w.grad.abs().sum() > 0


def test_kd_loss_vanishes_for_a_copy_of_the_student():
    kd = tiny_classifier(KDImageClassifier,
                         teacher=tiny_teacher_cfg(mean=MEAN, std=STD, to_rgb=True),
                         data_preprocessor=dict(mean=MEAN, std=STD, to_rgb=True))
    kd.teacher.load_state_dict(kd.state_dict())
    kd.eval()  # batch statistics would differ between the two in train mode
    data = kd_batch(kd)
    with torch.no_grad():
        assert kd.loss(data['inputs'], data['data_samples'])['loss_kd'].abs() < 1e-6


def test_kd_toy_config_builds_its_teacher_lazily():
    cfg = load_cfg(TOY_KD)
    model = build(cfg)
    assert model._teacher is None  # building and testing the student needs no teacher
    model.train()
    data = kd_batch(model, n=2, num_classes=4)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert set(losses) == {'loss_cls', 'loss_kd'}
    assert all(torch.isfinite(v) for v in losses.values())
    assert model.teacher.data_preprocessor.std.flatten().tolist() == [255.] * 3


# ------------------------------------------------------------ official checkpoints
def converter():
    path = osp.join(REPO, 'tools', 'model_converters', 'mobilemamba_official_to_mm.py')
    spec = importlib.util.spec_from_file_location('mobilemamba_official_to_mm', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.convert


def random_official_state_dict(model: torch.nn.Module) -> dict:
    """The classifier's weights, randomised (BN statistics included), under the official
    keys: the layout of the reference's S6 fixture, plus ``head_dist.*`` if distilled."""
    gen = torch.Generator().manual_seed(0)
    sd = {}
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            noise = torch.rand(value.shape, generator=gen) if 'running_var' in key else \
                torch.randn(value.shape, generator=gen)
            value = value + 0.1 * noise
        sd[key.split('.', 1)[1]] = value  # drop 'backbone.' / the head wrapper's 'head.'
    with open(osp.join(FIXTURES, 'keys_S6.json')) as f:
        keys = [e['key'] for e in json.load(f)['keys']]
    assert [k for k in sd if not k.startswith('head_dist.')] == keys
    return sd


@pytest.mark.parametrize('distillation', [False, True])
def test_converted_official_checkpoint_matches_loading_by_hand(tmp_path, distillation):
    cfg = load_cfg('mobilemamba_s6_8xb128_in1k.py')
    cfg.model.head.distillation = distillation
    official = random_official_state_dict(build(cfg))
    src, dst = str(tmp_path / 'official.pth'), str(tmp_path / 'mm.pth')
    torch.save({'net': official, 'epoch': 300}, src)
    converter()(src, dst)
    converted = build(cfg)
    load_checkpoint(converted, dst, map_location='cpu', strict=True)

    by_hand = build(cfg)
    heads = {'head': by_hand.head.head, 'head_dist': by_hand.head.head_dist}
    backbone = {k: v for k, v in official.items() if k.split('.')[0] not in heads}
    by_hand.backbone.load_state_dict(backbone, strict=True)
    for name, module in heads.items():
        if module is not None:
            module.load_state_dict({k[len(name) + 1:]: v for k, v in official.items()
                                    if k.startswith(name + '.')}, strict=True)

    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a = converted.eval()(x, mode='tensor')
        b = by_hand.eval()(x, mode='tensor')
    assert torch.isfinite(b).all() and b.std() > 0
    assert (a - b).abs().max() <= 1e-6


# ------------------------------------------------------------------- toy dataset
def test_toy_imagenet_layout_and_determinism(tmp_path):
    names = make_toy_imagenet(str(tmp_path / 'a'), num_classes=3, train_per_class=2,
                              val_per_class=1, size=40, seed=1)
    assert names == tuple(toy_class_names(3)) and len(set(names)) == 3
    with open(tmp_path / 'a' / 'meta' / 'classes.txt') as f:
        assert f.read().split() == list(names)
    train = ImageNet(data_root=str(tmp_path / 'a'), split='train', metainfo=dict(classes=names))
    val = ImageNet(data_root=str(tmp_path / 'a'), split='val', metainfo=dict(classes=names))
    assert len(train) == 6 and len(val) == 3
    assert sorted(train.get_gt_labels().tolist()) == [0, 0, 1, 1, 2, 2]
    info = train.get_data_info(0)
    assert osp.isfile(info['img_path']) and names[info['gt_label']] in info['img_path']
    make_toy_imagenet(str(tmp_path / 'b'), num_classes=3, train_per_class=2,
                      val_per_class=1, size=40, seed=1)
    for split_file in ('train/', 'val/'):
        for a in sorted(glob.glob(str(tmp_path / 'a' / split_file / '*' / '*.jpg'))):
            with open(a, 'rb') as fa, open(a.replace('/a/', '/b/'), 'rb') as fb:
                assert fa.read() == fb.read()
    with pytest.raises(ValueError, match='num_classes'):
        toy_class_names(0)


def test_toy_config_matches_the_generator():
    cfg = load_cfg(TOY)
    names = toy_class_names(cfg.model.head.num_classes)
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert list(loader.dataset.metainfo.classes) == names
        assert loader.dataset.data_root == 'data/toy/imagenet'
    assert cfg.data_preprocessor.num_classes == len(names)


# -------------------------------------------------------- train / test integration
def run_tool(*args, timeout=240) -> str:
    env = dict(os.environ, OMP_NUM_THREADS='1')  # see one_thread()
    proc = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout + proc.stderr


def data_root_options(root: str) -> list:
    return [f'{loader}.dataset.data_root={root}'
            for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]


@pytest.fixture(scope='module')
def toy_data(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('toy') / 'imagenet')
    make_toy_imagenet(root, num_classes=4, train_per_class=4, val_per_class=4, size=64)
    return root


@pytest.fixture(scope='module')
def toy_checkpoint(toy_data, tmp_path_factory) -> str:
    """Two epochs of one iteration (16 images) of the toy config with tools/train.py."""
    work_dir = str(tmp_path_factory.mktemp('toy_train'))
    run_tool('tools/train.py', osp.join(CFG_DIR, TOY), '--work-dir', work_dir,
             '--cfg-options', 'train_cfg.max_epochs=2', *data_root_options(toy_data))
    ckpt = osp.join(work_dir, 'epoch_2.pth')
    assert osp.isfile(ckpt)
    return ckpt


def run_test(config: str, ckpt: str, data_root: str, out: str, *extra) -> float:
    text = run_tool('tools/test.py', osp.join(CFG_DIR, config), ckpt, '--out', out,
                    '--work-dir', osp.dirname(out), *extra,
                    '--cfg-options', *data_root_options(data_root))
    top1 = re.findall(r'accuracy/top1: ([0-9.]+)', text)
    assert top1, text[-3000:]
    return float(top1[-1])


@pytest.fixture(scope='module')
def toy_predictions(toy_data, toy_checkpoint, tmp_path_factory) -> tuple:
    """tools/test.py on the toy checkpoint: (top-1, --out dump)."""
    out = str(tmp_path_factory.mktemp('toy_test') / 'preds.pkl')
    return run_test(TOY, toy_checkpoint, toy_data, out), out


@pytest.mark.slow
def test_toy_train_writes_a_checkpoint(toy_checkpoint):
    ckpt = torch.load(toy_checkpoint, map_location='cpu', weights_only=False)
    assert ckpt['meta']['epoch'] == 2
    # EMAHook saves the EMA weights as the state_dict, the raw ones beside them
    assert 'ema_state_dict' in ckpt and 'backbone.patch_embed.0.c.weight' in ckpt['state_dict']


@pytest.mark.slow
def test_toy_test_reports_top1(toy_predictions):
    top1, out = toy_predictions
    assert 0.0 <= top1 <= 100.0 and osp.isfile(out)


@pytest.mark.slow
def test_toy_fused_test_equals_unfused(toy_data, toy_checkpoint, toy_predictions, tmp_path):
    top1, plain = toy_predictions
    fused = str(tmp_path / 'preds.pkl')
    assert run_test(TOY, toy_checkpoint, toy_data, fused, '--fuse') == top1
    with open(plain, 'rb') as f:
        a = pickle.load(f)
    with open(fused, 'rb') as f:
        b = pickle.load(f)
    assert len(a) == len(b) == 16
    for x, y in zip(a, b):
        assert x['img_path'] == y['img_path']
        assert x['pred_label'].tolist() == y['pred_label'].tolist()
        torch.testing.assert_close(x['pred_score'], y['pred_score'], atol=1e-5, rtol=0)


@pytest.mark.slow
def test_toy_kd_trains_and_logs_both_losses(toy_data, tmp_path):
    work_dir = str(tmp_path / 'kd')
    run_tool('tools/train.py', osp.join(CFG_DIR, TOY_KD), '--work-dir', work_dir,
             '--cfg-options', 'train_cfg.max_epochs=2', 'default_hooks.logger.interval=1',
             *data_root_options(toy_data))
    logs = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    assert logs
    with open(logs[0]) as f:
        records = [json.loads(line) for line in f]
    train = [r for r in records if 'loss_kd' in r]
    assert train and all('loss_cls' in r for r in train)
    assert all(r['loss'] == pytest.approx(r['loss_cls'] + r['loss_kd'], rel=1e-3)
               for r in train)
    ckpt = torch.load(osp.join(work_dir, 'epoch_2.pth'), map_location='cpu',
                      weights_only=False)
    assert not any('teacher' in k for k in ckpt['state_dict'])
