"""The four COCO detection configs on MobileMamba-B1 (RetinaNet, Mask R-CNN, SSDLite 320 and
512): parameter counts and SSDLite FLOPs against the paper, the training recipe, the loud
warning without pretrained weights, and strict loading of reference-layout checkpoints."""
import json
import os.path as osp

import pytest
import torch

pytest.importorskip('mmdet', reason='mmdet (and a compiled mmcv) are needed for detection')

from mmengine.config import Config  # noqa: E402
from mmengine.registry import MODELS, init_default_scope  # noqa: E402

from mmmobilemamba.analysis.det_flops import count_detector_flops  # noqa: E402

RETINA, MASK = 'retinanet_mobilemamba_b1', 'mask-rcnn_mobilemamba_b1'
SSD, SSD512 = 'ssdlite_mobilemamba_b1', 'ssdlite_mobilemamba_b1_512'
CONFIGS = (RETINA, MASK, SSD, SSD512)

# Exact counts of our models, and the paper's (Tab. 4/5, A6/A7) in millions.
PARAMS = {RETINA: 27_054_253, MASK: 37_954_985, SSD: 18_020_845, SSD512: 18_020_845}
PAPER_PARAMS = {RETINA: 27.1, MASK: 38.0, SSD: 18.0, SSD512: 18.0}


@pytest.fixture(scope='module')
def cfg_path(repo_root):
    """``cfg_path(name)``: the path of configs/detection/<name>.py."""
    return lambda name: osp.join(repo_root, 'configs', 'detection', name + '.py')


@pytest.fixture(scope='module')
def detector(cfg_path, build_model):
    """``detector(name)``: the config's model in eval mode, built once per module (tests
    must not change it)."""
    cache = {}

    def get(name: str) -> torch.nn.Module:
        if name not in cache:
            cache[name] = build_model(cfg_path(name)).eval()
        return cache[name]
    return get


@pytest.mark.parametrize('name', CONFIGS)
def test_param_count_matches_paper(name, detector, n_params):
    n = n_params(detector(name))
    assert n == PARAMS[name]
    assert abs(n / 1e6 - PAPER_PARAMS[name]) < 0.05


@pytest.mark.parametrize('name, size, paper', [(SSD, 320, 1.7e9), (SSD512, 512, 4.4e9)])
def test_ssdlite_flops_match_paper(name, size, paper, detector):
    flops, _ = count_detector_flops(detector(name), size, size)
    assert abs(flops / paper - 1) < 0.03, flops


@pytest.mark.parametrize('name', CONFIGS)
def test_recipe(name, cfg_path):
    cfg = Config.fromfile(cfg_path(name))
    assert cfg.custom_imports.imports[0] == 'mmmobilemamba'
    assert not cfg.custom_imports.allow_failed_imports
    assert 'pretrained' not in cfg  # the weights go to model.backbone.init_cfg only
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


def test_training_without_pretrained_warns_loudly(cfg_path):
    cfg = Config.fromfile(cfg_path(SSD))
    init_default_scope('mmdet')
    with pytest.warns(UserWarning, match='(?i)random'):
        MODELS.build(cfg.model).init_weights()


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
def test_reference_detection_checkpoint_loads_strictly(name, trans, on_input, cfg_path,
                                                       build_model, data_file):
    """A checkpoint in the reference layout (official backbone keys of keys_B1.json, the
    reference neck's keys, mmdet's heads) loads with strict=True."""
    model = build_model(cfg_path(name))  # a fresh one: the zeros below must not leak
    with open(data_file('keys_B1.json')) as f:
        backbone = [k for k in json.load(f)['keys'] if not k['key'].startswith('head.')]
    state = {'backbone.' + k['key']: torch.zeros(k['shape'], dtype=getattr(torch, k['dtype']))
             for k in backbone}
    state.update({'neck.' + k: torch.zeros(s)
                  for k, s in reference_neck_shapes(trans, on_input).items()})
    heads = {k: v for k, v in model.state_dict().items()
             if not k.startswith(('backbone.', 'neck.'))}
    state.update({k: torch.zeros_like(v) for k, v in heads.items()})
    model.load_state_dict(state, strict=True)  # raises on any missing/unexpected/shape issue


@pytest.mark.parametrize('path', ['configs/detection/mask-rcnn_mobilemamba_b1.py',
                                  'configs/detection/mask-rcnn_mobilemamba_b1_toy.py',
                                  'docs/examples/faster-rcnn_mobilemamba_b1.py'])
def test_two_stage_configs_use_torchvisions_roi_align(path, repo_root):
    """mmcv 2.1's CUDA RoIAlign has no bfloat16 kernel (Mask R-CNN stopped under --amp on an
    H200); torchvision's runs under autocast. Its float32 result is mmcv's, here on the CPU."""
    from mmcv.ops import RoIAlign
    roi_head = Config.fromfile(osp.join(repo_root, path)).model.roi_head
    layers = [roi_head.bbox_roi_extractor.roi_layer]
    if 'mask_roi_extractor' in roi_head:
        layers.append(roi_head.mask_roi_extractor.roi_layer)
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 8, 25, 42, generator=g)
    boxes = torch.rand(32, 4, generator=g) * 300
    boxes[:, 2:] += boxes[:, :2]
    rois = torch.cat([torch.randint(0, 2, (32, 1), generator=g).float(), boxes], 1)
    for layer in layers:
        assert layer.type == 'RoIAlign' and layer.use_torchvision is True
        args = dict(output_size=layer.output_size, spatial_scale=1 / 16,
                    sampling_ratio=layer.sampling_ratio)
        torch.testing.assert_close(RoIAlign(**args, use_torchvision=True)(feats, rois),
                                   RoIAlign(**args)(feats, rois), rtol=1e-5, atol=1e-6)
