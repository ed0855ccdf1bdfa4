"""COCO detection with mmdet: the EfficientViTFPN neck, the four B1 configs (sizes, FLOPs,
recipe), reference-checkpoint loading, the toy dataset, and toy train/test runs (slow)."""
import json
import os
import os.path as osp
import subprocess
import sys
from functools import lru_cache

import pytest
import torch

pytest.importorskip('mmdet', reason='mmdet (and a compiled mmcv) are needed for detection')

from mmdet.structures import DetDataSample  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.registry import MODELS, init_default_scope  # noqa: E402

from mmmobilemamba.analysis.det_flops import count_detector_flops  # noqa: E402
from mmmobilemamba.datasets.toy_detection import CLASSES, make_toy_coco  # noqa: E402
from mmmobilemamba.datasets.toy_detection import main as toy_main  # noqa: E402
from mmmobilemamba.models.necks import EfficientViTFPN  # noqa: E402
from mmmobilemamba.utils import missing_dataset_paths  # noqa: E402

from conftest import FIXTURES, REPO  # noqa: E402

CFG_DIR = osp.join(REPO, 'configs', 'detection')
RETINA, MASK = 'retinanet_mobilemamba_b1', 'mask-rcnn_mobilemamba_b1'
SSD, SSD512 = 'ssdlite_mobilemamba_b1', 'ssdlite_mobilemamba_b1_512'
CONFIGS = (RETINA, MASK, SSD, SSD512)

# Exact counts of our models, and the paper's (Tab. 4/5, A6/A7) in millions.
PARAMS = {RETINA: 27_054_253, MASK: 37_954_985, SSD: 18_020_845, SSD512: 18_020_845}
PAPER_PARAMS = {RETINA: 27.1, MASK: 38.0, SSD: 18.0, SSD512: 18.0}
# subprocesses run from temp dirs: find the package even where it is not pip-installed
ENV = dict(os.environ,
           PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get('PYTHONPATH')])))


def cfg_path(name: str) -> str:
    return osp.join(CFG_DIR, name + '.py')


@lru_cache(maxsize=None)
def build(name: str) -> torch.nn.Module:
    cfg = Config.fromfile(cfg_path(name))
    init_default_scope('mmdet')
    return MODELS.build(cfg.model).eval()


def num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- neck


def fpn_inputs(h: int = 256, w: int = 192):
    return [torch.randn(1, c, h // s, w // s) for c, s in ((200, 16), (376, 32), (448, 64))]


@pytest.mark.parametrize('trans, extra, strides', [
    (1, 'on_input', (8, 16, 32, 64, 128)),   # RetinaNet
    (2, False, (4, 8, 16, 32, 64)),           # Mask R-CNN
    (0, False, (16, 32, 64, 128, 256)),       # plain FPN behaviour (max-pool levels)
])
def test_neck_output_strides(trans, extra, strides):
    neck = EfficientViTFPN([200, 376, 448], 256, num_outs=5, num_extra_trans_convs=trans,
                           add_extra_convs=extra).eval()
    with torch.no_grad():
        outs = neck(fpn_inputs(256, 192))
    assert [tuple(o.shape) for o in outs] == [
        (1, 256, -(-256 // s), -(-192 // s)) for s in strides]


def test_neck_refines_finest_level_with_first_extra_fpn_conv():
    """The reference pairs extra_fpn_convs[i] with the i-th *finest* transposed level."""
    neck = EfficientViTFPN([200, 376, 448], 256, num_outs=5, num_extra_trans_convs=2).eval()
    seen = {}
    for i, conv in enumerate(neck.extra_fpn_convs):
        conv.register_forward_hook(lambda m, a, o, i=i: seen.setdefault(i, a[0].shape[-2:]))
    with torch.no_grad():
        neck(fpn_inputs(256, 256))
    assert seen == {0: (64, 64), 1: (32, 32)}


def test_neck_validates_arguments():
    with pytest.raises(ValueError, match='num_extra_trans_convs'):
        EfficientViTFPN([200, 376, 448], 256, num_outs=5, num_extra_trans_convs=-1)
    neck = EfficientViTFPN([200, 376, 448], 256, num_outs=5, num_extra_trans_convs=2)
    with pytest.raises(ValueError, match='expected 3'):
        neck(fpn_inputs()[:2])


# ---------------------------------------------------------------- configs


@pytest.mark.parametrize('name', CONFIGS)
def test_param_count_matches_paper(name):
    n = num_params(build(name))
    assert n == PARAMS[name]
    assert abs(n / 1e6 - PAPER_PARAMS[name]) < 0.05


@pytest.mark.parametrize('name, size, paper', [(SSD, 320, 1.7e9), (SSD512, 512, 4.4e9)])
def test_ssdlite_flops_match_paper(name, size, paper):
    flops, _ = count_detector_flops(build(name), size, size)
    assert abs(flops / paper - 1) < 0.03, flops


@pytest.mark.parametrize('name', CONFIGS)
def test_recipe(name):
    cfg = Config.fromfile(cfg_path(name))
    assert cfg.custom_imports.imports[0] == 'mmmobilemamba'
    assert not cfg.custom_imports.allow_failed_imports
    assert cfg.pretrained is None
    bb = cfg.model.backbone
    assert (bb.type, bb.arch, bb.norm_eval) == ('MobileMamba', 'b1', True)
    assert bb.init_cfg == dict(type='Pretrained', checkpoint=None)
    opt = cfg.optim_wrapper
    ssd = name.startswith('ssdlite')
    assert opt.optimizer == dict(type='AdamW', lr=2.4e-3 if ssd else 2e-4, betas=(0.9, 0.999),
                                 weight_decay=0.05)
    assert opt.clip_grad == dict(max_norm=0.1, norm_type=2)
    epochs = 120 if ssd else 12
    assert cfg.train_cfg.max_epochs == epochs
    assert cfg.train_dataloader.batch_size == (24 if ssd else 4)
    assert cfg.auto_scale_lr.base_batch_size == (192 if ssd else 32)
    warmup, cosine = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.end, warmup.by_epoch) == (
        'LinearLR', 1e-5, 500, False)
    assert (cosine.type, cosine.begin, cosine.end, cosine.eta_min) == (
        'CosineAnnealingLR', epochs // 2, epochs, 0)


def test_training_without_pretrained_warns_loudly():
    cfg = Config.fromfile(cfg_path(SSD))
    init_default_scope('mmdet')
    with pytest.warns(UserWarning, match='(?i)random'):
        MODELS.build(cfg.model).init_weights()


@pytest.mark.parametrize('name', CONFIGS)
def test_real_configs_read_standard_coco_layout(name):
    missing = missing_dataset_paths(Config.fromfile(cfg_path(name)))
    assert set(missing) >= {'data/coco/annotations/instances_train2017.json',
                            'data/coco/train2017/',
                            'data/coco/annotations/instances_val2017.json',
                            'data/coco/val2017/'}


def test_train_without_coco_names_expected_files(tmp_path):
    res = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'train.py'),
                          cfg_path(RETINA)], cwd=tmp_path, capture_output=True, text=True,
                         env=ENV)
    assert res.returncode != 0
    for path in ('data/coco/annotations/instances_train2017.json', 'data/coco/train2017/',
                 'data/coco/annotations/instances_val2017.json', 'data/coco/val2017/'):
        assert path in res.stderr


def test_ssdlite_predicts():
    """mmdet 3.3's SSDHead dies in predict (no loss_cls); FixedSSDHead must not."""
    model = build(SSD)
    sample = DetDataSample(metainfo=dict(img_shape=(320, 320), ori_shape=(320, 320),
                                         scale_factor=(1.0, 1.0)))
    with torch.no_grad():
        res = model(torch.randn(1, 3, 320, 320), [sample], mode='predict')
    assert res[0].pred_instances.bboxes.shape[1] == 4


# ---------------------------------------------------------------- reference checkpoints


def reference_neck_shapes(trans: int, extra_on_input: bool) -> dict:
    """EfficientViTFPN's state_dict in the reference layout (B1 inputs, 256 channels)."""
    shapes = {}
    for i, c in enumerate((200, 376, 448)):
        shapes[f'lateral_convs.{i}.conv.weight'] = (256, c, 1, 1)
        shapes[f'fpn_convs.{i}.conv.weight'] = (256, 256, 3, 3)
    if extra_on_input:
        shapes['fpn_convs.3.conv.weight'] = (256, 448, 3, 3)
    for i in range(trans):
        shapes[f'extra_trans_convs.{i}.conv.weight'] = (256, 256, 2, 2)  # ConvTranspose2d
        shapes[f'extra_fpn_convs.{i}.conv.weight'] = (256, 256, 3, 3)
    shapes.update({k.replace('weight', 'bias'): (256, ) for k in list(shapes)})
    return shapes


@pytest.mark.parametrize('name, trans, on_input', [(RETINA, 1, True), (MASK, 2, False)])
def test_reference_detection_checkpoint_loads_strictly(name, trans, on_input):
    model = build.__wrapped__(name)  # a fresh one: the zeros below must not leak
    with open(osp.join(FIXTURES, 'keys_B1.json')) as f:
        backbone = [k for k in json.load(f)['keys'] if not k['key'].startswith('head.')]
    state = {'backbone.' + k['key']: torch.zeros(k['shape'], dtype=getattr(torch, k['dtype']))
             for k in backbone}
    state.update({'neck.' + k: torch.zeros(s)
                  for k, s in reference_neck_shapes(trans, on_input).items()})
    heads = {k: v for k, v in model.state_dict().items()
             if not k.startswith(('backbone.', 'neck.'))}
    state.update({k: torch.zeros_like(v) for k, v in heads.items()})
    model.load_state_dict(state, strict=True)  # raises on any missing/unexpected/shape issue


# ---------------------------------------------------------------- toy data


def test_toy_coco_is_valid_and_deterministic(tmp_path):
    from pycocotools.coco import COCO
    root = make_toy_coco(str(tmp_path / 'a'), num_train=6, num_val=3, size=96, seed=1)
    make_toy_coco(str(tmp_path / 'b'), num_train=6, num_val=3, size=96, seed=1)
    for split, num in (('train', 6), ('val', 3)):
        ann = osp.join(root, 'annotations', f'instances_{split}2017.json')
        coco = COCO(ann)
        assert len(coco.imgs) == num and len(os.listdir(osp.join(root, f'{split}2017'))) == num
        assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(CLASSES)
        for a in coco.anns.values():
            x, y, w, h = a['bbox']
            assert w > 0.25 * 96 and h > 0.25 * 96 and x >= 0 and y >= 0
            assert coco.annToMask(a).sum() > 0.4 * w * h  # polygon fills most of its box
        with open(ann) as f, open(ann.replace(str(tmp_path / 'a'), str(tmp_path / 'b'))) as g:
            assert f.read() == g.read()


def test_toy_coco_cli(tmp_path, monkeypatch):
    out = tmp_path / 'coco'
    monkeypatch.setattr(sys, 'argv', ['toy_detection', str(out), '--num-train', '2',
                                      '--num-val', '1', '--size', '64'])
    toy_main()  # what `python -m mmmobilemamba.datasets.toy_detection ...` runs
    assert (out / 'annotations' / 'instances_val2017.json').is_file()
    assert len(list((out / 'train2017').iterdir())) == 2


# ---------------------------------------------------------------- toy train + test (slow)


def run_tool(args, cwd):
    res = subprocess.run([sys.executable] + args, cwd=cwd, capture_output=True, text=True,
                         env=ENV)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    return out


@pytest.mark.slow
@pytest.mark.parametrize('name, metrics', [
    (RETINA, ('bbox', )), (MASK, ('bbox', 'segm')), (SSD, ('bbox', )), (SSD512, ('bbox', ))])
def test_toy_train_then_test(tmp_path, name, metrics):
    root = make_toy_coco(str(tmp_path / 'coco'), num_train=2, num_val=2, size=128, seed=0)
    ann = osp.join(root, 'annotations', 'instances_val2017.json')
    ssd = name.startswith('ssdlite')
    train_root = 'train_dataloader.dataset.dataset' if ssd else 'train_dataloader.dataset'
    data = [f'{train_root}.data_root={root}/', f'val_dataloader.dataset.data_root={root}/',
            f'test_dataloader.dataset.data_root={root}/', f'val_evaluator.ann_file={ann}',
            f'test_evaluator.ann_file={ann}']
    config, work = cfg_path(name + '_toy'), str(tmp_path / 'work')
    run_tool([osp.join(REPO, 'tools', 'train.py'), config, '--work-dir', work,
              '--cfg-options', 'train_cfg.max_epochs=1', 'train_cfg.val_begin=100',
              'train_dataloader.batch_size=2'] + data, cwd=tmp_path)  # 1 step
    # after 1 step no score passes the usual threshold; keep every box so metrics exist
    thr = 'model.test_cfg.rcnn.score_thr=0' if name == MASK else 'model.test_cfg.score_thr=0'
    out = run_tool([osp.join(REPO, 'tools', 'test.py'), config, osp.join(work, 'epoch_1.pth'),
                    '--work-dir', work, '--cfg-options', thr] + data, cwd=tmp_path)
    for metric in metrics:
        assert f'coco/{metric}_mAP_50' in out, out[-3000:]
