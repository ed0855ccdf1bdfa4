"""The recipes of docs/examples (Faster R-CNN, FCOS, UPerNet on MobileMamba) train on toy data
with the feature strides their heads expect, and a detector whose neck gives other strides
than its heads assume stops with an error that lists both and names the fix, through
mmdet's init_detector + inference and through training alike."""
import math
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

pytest.importorskip('mmdet', reason='mmdet (and a compiled mmcv) are needed for detection')

from mmdet.apis import inference_detector, init_detector  # noqa: E402
from mmdet.structures import DetDataSample  # noqa: E402

from mmmobilemamba.datasets.toy_detection import CLASSES, make_toy_coco  # noqa: E402
from mmmobilemamba.datasets.toy_segmentation import TOY_CLASSES, make_toy_ade  # noqa: E402
from mmmobilemamba.models import MobileMamba  # noqa: E402
from mmmobilemamba.models.utils import shape_checks  # noqa: E402
from mmmobilemamba.models.utils.shape_checks import (check_feature_strides,  # noqa: E402
                                                     head_strides, level_agrees,
                                                     measured_stride)

pytestmark = pytest.mark.usefixtures('one_thread')

SIZE = 96  # toy image side: strides 4..64 give 24 .. 2 pixel maps
FASTER, FCOS, UPERNET = ('faster-rcnn_mobilemamba_b1', 'fcos_mobilemamba_b1',
                         'upernet_mobilemamba_b4')


@pytest.fixture(scope='module')
def toy_coco(tmp_path_factory) -> str:
    return make_toy_coco(str(tmp_path_factory.mktemp('coco')), num_train=4, num_val=1,
                         size=SIZE, seed=0)


def recipe(repo_root: str, name: str) -> Config:
    return Config.fromfile(osp.join(repo_root, 'docs', 'examples', name + '.py'))


def tiny_backbone(cfg: Config, arch: dict) -> None:
    """A small random backbone (the recipes' wiring, not B1's width, is under test)."""
    cfg.model.backbone.update(arch=arch, init_cfg=None, norm_eval=False)
    widths = arch['embed_dims']
    if cfg.model.get('neck'):
        cfg.model.neck.in_channels = widths
    else:  # UPerNet: patch_embed and blocks1..3
        cfg.model.decode_head.in_channels = [widths[0]] + widths
        cfg.model.auxiliary_head.in_channels = widths[1]


def on_toy_coco(cfg: Config, root: str, work_dir: str) -> Config:
    """The detection recipe on the toy COCO at SIZE pixels: one epoch, 2 steps of 2 images."""
    if cfg.model.get('roi_head'):
        cfg.model.roi_head.bbox_head.num_classes = len(CLASSES)
        # a few objects per image: far fewer proposals and RoIs than COCO's
        cfg.model.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=100)
        cfg.model.train_cfg.rcnn.sampler.num = 64
    else:
        cfg.model.bbox_head.num_classes = len(CLASSES)
    pipeline = cfg.train_dataloader.dataset.pipeline
    resize = next(t for t in pipeline if t.type == 'Resize')
    resize.scale = (SIZE, SIZE)
    cfg.train_dataloader.update(batch_size=2, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.update(data_root=root + '/', metainfo=dict(classes=CLASSES))
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1)
    return training_only(cfg, work_dir)


def training_only(cfg: Config, work_dir: str) -> Config:
    for key in ('val', 'test'):  # training only
        cfg[f'{key}_dataloader'] = cfg[f'{key}_cfg'] = cfg[f'{key}_evaluator'] = None
    cfg.default_hooks.checkpoint = None
    cfg.work_dir = work_dir
    return cfg


def train_losses(cfg: Config) -> list:
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner.message_hub.get_scalar('train/loss').data[0]


# ------------------------------------------------------------------ the recipes train


@pytest.mark.parametrize('name, strides', [(FASTER, [4, 8, 16, 32, 64]),
                                           (FCOS, [8, 16, 32, 64, 128])])
def test_recipe_neck_gives_the_strides_its_heads_assume(repo_root, build_model, name, strides):
    cfg = recipe(repo_root, name)
    model = build_model(cfg).eval()
    assumed = {key: [w for w, _ in s] for key, (s, _) in head_strides(model).items()}
    with torch.no_grad():
        feats = model.neck(model.backbone(torch.randn(1, 3, 128, 192)))
    measured = [(measured_stride(128, f.shape[2]), measured_stride(192, f.shape[3]))
                for f in feats]
    assert measured == [(s, s) for s in strides]
    if name == FASTER:
        assert assumed == {'rpn_head.prior_generator.strides': strides,
                           'roi_head.bbox_roi_extractor.featmap_strides': strides[:4]}
    else:
        assert assumed == {'bbox_head.prior_generator.strides': strides}
        prep = cfg.model.data_preprocessor  # ImageNet RGB, not the base's Caffe BGR
        assert prep.bgr_to_rgb and prep.std == [58.395, 57.12, 57.375]


@pytest.mark.parametrize('name', [FASTER, FCOS])
def test_detection_recipe_trains_on_toy_coco(repo_root, tiny_arch, toy_coco, tmp_path, name):
    cfg = recipe(repo_root, name)
    tiny_backbone(cfg, tiny_arch())
    losses = train_losses(on_toy_coco(cfg, toy_coco, str(tmp_path)))
    assert len(losses) == 2 and all(math.isfinite(v) and v > 0 for v in losses), losses


def test_upernet_recipe_trains_on_toy_ade(repo_root, tiny_arch, tmp_path):
    cfg = recipe(repo_root, UPERNET)
    assert cfg.model.backbone.out_indices == (0, 1, 2, 3)
    assert cfg.model.decode_head.in_index == [0, 1, 2, 3]  # the base's, all four levels
    assert cfg.model.auxiliary_head.in_index == 2  # blocks2, 376 channels
    tiny_backbone(cfg, tiny_arch())
    root = make_toy_ade(str(tmp_path / 'ade'), num_train=2, num_val=1, size=64)
    num_classes = 4
    for head in (cfg.model.decode_head, cfg.model.auxiliary_head):
        head.update(num_classes=num_classes, norm_cfg=dict(type='BN', requires_grad=True))
    cfg.model.data_preprocessor.size = (64, 64)
    cfg.train_dataloader.update(batch_size=2, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.update(
        data_root=root, metainfo=dict(classes=TOY_CLASSES[:num_classes]),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', reduce_zero_label=True),
                  dict(type='PackSegInputs')])
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2)
    losses = train_losses(training_only(cfg, str(tmp_path / 'work')))
    assert len(losses) == 2 and all(math.isfinite(v) and v > 0 for v in losses), losses


# ---------------------------------------------------- a stock FPN fails, and says why


def with_stock_fpn(cfg: Config) -> Config:
    """The recipe as a user would first write it: mmdet's FPN straight on MobileMamba."""
    neck = cfg.model.neck
    neck.type = 'FPN'
    neck.pop('num_extra_trans_convs')
    return cfg


# the first levels of a stock FPN on blocks1..3 against what the heads assume
STOCK = {FASTER: dict(real=[16, 32, 64], assumed=[4, 8, 16],
                      keys=['rpn_head.prior_generator.strides',
                            'roi_head.bbox_roi_extractor.featmap_strides']),
         FCOS: dict(real=[16, 32, 64], assumed=[8, 16, 32],
                    keys=['bbox_head.prior_generator.strides'])}


def assert_names_strides_and_fix(message: str, name: str) -> None:
    stock = STOCK[name]
    assert f'not at the strides that {", ".join(stock["keys"])} assume' in message
    for level, (real, assumed) in enumerate(zip(stock['real'], stock['assumed'])):
        size = -(-SIZE // real)
        assert (f'level {level}: features at stride {real} ({size}x{size}); '
                f'{stock["keys"][0]} {assumed}') in message, message
    assert 'the outputs of the neck (FPN)' in message
    assert "neck=dict(type='EfficientViTFPN', num_extra_trans_convs=2" in message
    assert 'docs/config_inheritance.md, section "Finer strides' in message


@pytest.mark.parametrize('name', [FASTER, FCOS])
def test_stock_fpn_fails_clearly_in_init_detector_inference(repo_root, tiny_arch, name):
    cfg = with_stock_fpn(recipe(repo_root, name))
    tiny_backbone(cfg, tiny_arch())
    test_pipeline = cfg.test_dataloader.dataset.pipeline
    next(t for t in test_pipeline if t.type == 'Resize').scale = (SIZE, SIZE)
    model = init_detector(cfg, device='cpu')
    image = np.random.default_rng(0).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
    for _ in range(2):  # a failing model keeps failing: the check is not used up
        with pytest.raises(ValueError) as err:
            inference_detector(model, image)
        assert_names_strides_and_fix(str(err.value), name)
    assert not model.backbone._forward_hooks and not model.neck._forward_hooks


@pytest.mark.parametrize('name', [FASTER, FCOS])
def test_stock_fpn_fails_clearly_in_training(repo_root, tiny_arch, toy_coco, tmp_path, name):
    cfg = with_stock_fpn(recipe(repo_root, name))
    tiny_backbone(cfg, tiny_arch())
    with pytest.raises(ValueError) as err:
        train_losses(on_toy_coco(cfg, toy_coco, str(tmp_path)))
    assert_names_strides_and_fix(str(err.value), name)


def test_detector_without_neck_is_checked_on_backbone_outputs(tiny_arch, build_model):
    """No neck: the heads read the backbone's own outputs, blocks1 and blocks2 here."""
    arch = tiny_arch()
    arch['embed_dims'] = [32, 32, 64]  # one width for both levels, so one head reads them

    def retina(strides):
        cfg = Config(dict(default_scope='mmdet', model=dict(
            type='SingleStageDetector',
            data_preprocessor=dict(type='DetDataPreprocessor', pad_size_divisor=32),
            backbone=dict(type='MobileMamba', arch=arch, out_indices=(1, 2)),
            bbox_head=dict(
                type='RetinaHead', num_classes=3, in_channels=32, feat_channels=32,
                anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                                      scales_per_octave=1, ratios=[1.0], strides=strides),
                bbox_coder=dict(type='DeltaXYWHBBoxCoder'),
                loss_cls=dict(type='FocalLoss', use_sigmoid=True),
                loss_bbox=dict(type='L1Loss')),
            test_cfg=dict(nms_pre=100, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5),
                          max_per_img=10))))
        return build_model(cfg).eval()

    sample = DetDataSample(metainfo=dict(img_shape=(128, 128), ori_shape=(128, 128),
                                         scale_factor=(1.0, 1.0)))
    with torch.no_grad():
        out = retina([16, 32])(torch.randn(1, 3, 128, 128), [sample], mode='predict')
        assert out[0].pred_instances.bboxes.shape[1] == 4
        with pytest.raises(ValueError, match=r'(?s)the backbone outputs \(no neck\).*'
                           r'level 0: features at stride 16 \(8x8\); '
                           r'bbox_head.prior_generator.strides 8'):
            retina([8, 16])(torch.randn(1, 3, 128, 128), [sample], mode='predict')


# -------------------------------------------------- our own configs pass the check


@pytest.mark.parametrize('name, size, keys', [
    ('retinanet_mobilemamba_b1', 160, ['bbox_head.prior_generator.strides']),
    ('mask-rcnn_mobilemamba_b1', 160, ['rpn_head.prior_generator.strides',
                                       'roi_head.bbox_roi_extractor.featmap_strides',
                                       'roi_head.mask_roi_extractor.featmap_strides']),
    ('ssdlite_mobilemamba_b1', 192, ['bbox_head.prior_generator.strides']),
    ('ssdlite_mobilemamba_b1_512', 512, ['bbox_head.prior_generator.strides']),
    ('ssdlite_mobilemamba_b1_512', 256, ['bbox_head.prior_generator.strides']),  # its toy
])
def test_shipped_detection_configs_pass_the_check(repo_root, build_model, monkeypatch, name,
                                                  size, keys):
    model = build_model(osp.join(repo_root, 'configs', 'detection', name + '.py')).eval()
    assert list(head_strides(model)) == keys  # the check has strides to compare
    compare, verdicts = shape_checks.stride_mismatches, []
    monkeypatch.setattr(shape_checks, 'stride_mismatches',
                        lambda *args: verdicts.append(compare(*args)) or verdicts[-1])
    sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                         scale_factor=(1.0, 1.0)))
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(1, 3, size, size), [sample], mode='predict')
    assert verdicts == [[]]  # compared once, on the first forward, and all agreed


@pytest.mark.parametrize('name', ['deeplabv3', 'fpn', 'pspnet'])
def test_shipped_segmentation_configs_pass_the_check(repo_root, build_model, name):
    cfg = Config.fromfile(osp.join(repo_root, 'configs', 'segmentation',
                                   f'{name}_mobilemamba_b4.py'))
    model = build_model(cfg).eval()
    assert head_strides(model) == {}  # mmseg decoders place no anchors
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 128, 128), mode='tensor')
    assert logits.shape[:2] == (1, 150) and torch.isfinite(logits).all()


# ------------------------------------------------------------------ measuring strides


@pytest.mark.parametrize('size, out, stride', [
    (160, 10, 16), (160, 3, 64), (160, 2, 128), (160, 1, 256),  # padded convs round up
    (100, 7, 16), (100, 28, 4),  # 100 -> 7 at 16, two 2x transposed convs -> 28 ("stride 4")
])
def test_measured_stride(size, out, stride):
    assert measured_stride(size, out) == stride


@pytest.mark.parametrize('size, out, stride, agrees', [
    (512, 4, 107, True), (512, 2, 160, True), (512, 1, 320, True),  # SSD512's anchors
    (100, 28, 4, True),  # an upsampled level of an odd-sized input
    (160, 1, 512, True),  # one pixel either way
    (160, 10, 4, False), (160, 20, 4, False), (32, 4, 4, False),  # 4x and 2x off
    (32, 8, 8, False),  # finer than assumed
])
def test_level_agrees(size, out, stride, agrees):
    assert level_agrees(size, out, stride) is agrees


def test_stride_check_steps_aside_when_compiling_or_tracing(tiny_arch):
    """Frame inspection and hooks have no place in a graph: compiled or traced, the check
    neither breaks the graph nor uses itself up."""
    class Detector(torch.nn.Module):  # owns a backbone, whose head assumes stride 8
        def __init__(self):
            super().__init__()
            self.backbone = MobileMamba(tiny_arch(), out_indices=(1, ))
            self.bbox_head = torch.nn.Module()
            self.bbox_head.strides = [8]

        def forward(self, x):
            return self.backbone(x)

    det, x = Detector().eval(), torch.randn(1, 3, 64, 64)

    def step(x):
        check_feature_strides(det.backbone, x)
        return x * 2

    torch.compile(step, backend='eager', fullgraph=True)(x)
    torch.jit.trace(step, (x, ), check_trace=False)  # (its check re-runs step eagerly)
    assert not det.backbone.blocks1._forward_hooks
    assert not hasattr(det.backbone, '_stride_check_done')
    with torch.no_grad(), pytest.raises(ValueError, match=r'level 0: features at stride 16 '
                                        r'\(4x4\); bbox_head.strides 8'):
        det(x)  # eager: checked
