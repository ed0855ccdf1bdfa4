"""A neck or head configured for another MobileMamba variant's widths stops with an error that
names the module, the input, the configured and the real channels, the value to set and
where the widths of every variant are, instead of torch's conv / BatchNorm shape errors."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmmobilemamba.models import MobileMamba

WIDTHS = ('MobileMamba.arch_zoo (embed_dims) and the table "Another backbone variant" in '
          'docs/config_inheritance.md')
ALL_WIDTHS = ('t2 [144, 272, 368], t4 [176, 368, 448], s6 [192, 384, 448], '
              'b1 [200, 376, 448], b2 [200, 376, 448], b4 [200, 376, 448]')


def test_the_listed_widths_are_the_arch_zoo():
    listed = ', '.join(f'{k} {v["embed_dims"]}' for k, v in MobileMamba.arch_zoo.items())
    assert listed == ALL_WIDTHS


def test_detector_with_another_variants_neck_channels(repo_root, build_model):
    """RetinaNet-B1's neck (200/376/448) on an S6 backbone (192/384/448)."""
    pytest.importorskip('mmdet', reason='mmdet (and a compiled mmcv) are needed for detection')
    cfg = Config.fromfile(osp.join(repo_root, 'configs', 'detection',
                                   'retinanet_mobilemamba_b1.py'))
    cfg.model.backbone.update(arch='s6', init_cfg=None)
    model = build_model(cfg).eval()  # built through mmdet's MODELS, as the Runner does
    with torch.no_grad(), pytest.raises(ValueError) as err:
        model(torch.randn(1, 3, 64, 64), mode='tensor')
    assert str(err.value) == (
        'EfficientViTFPN: input 0 has 192 channels, neck.in_channels says 200; input 1 has '
        '384 channels, neck.in_channels says 376. Set neck.in_channels=[192, 384, 448], the '
        'channels it receives (backbone out_indices 0 and 1 give embed_dims[0], 2 and 3 '
        f'embed_dims[1] and [2]). Widths per variant ({WIDTHS}): {ALL_WIDTHS}.')


def test_neck_from_the_mmdet_registry_names_the_wrong_input():
    pytest.importorskip('mmdet', reason='mmdet (and a compiled mmcv) are needed for detection')
    from mmdet.registry import MODELS
    neck = MODELS.build(dict(type='EfficientViTFPN', in_channels=[200, 376, 448],
                             out_channels=32, num_outs=5, num_extra_trans_convs=2))
    feats = [torch.randn(1, c, s, s) for c, s in ((200, 8), (376, 4), (368, 2))]  # T2's last
    with pytest.raises(ValueError, match=r'^EfficientViTFPN: input 2 has 368 channels, '
                       r'neck.in_channels says 448\. Set neck.in_channels=\[200, 376, 368\]'):
        neck(feats)
    feats[2] = torch.randn(1, 448, 2, 2)
    assert [tuple(o.shape) for o in neck(feats)] == [(1, 32, 32, 32), (1, 32, 16, 16),
                                                    (1, 32, 8, 8), (1, 32, 4, 4), (1, 32, 2, 2)]


def test_classifier_with_another_variants_head_channels(repo_root, build_model):
    """The T2 classifier (last stage 368 channels) with S6's head width (448)."""
    pytest.importorskip('mmpretrain')
    cfg = Config.fromfile(osp.join(repo_root, 'configs', 'classification',
                                   'mobilemamba_t2_8xb128_in1k.py'))
    cfg.model.head.in_channels = 448
    model = build_model(cfg).eval()  # through mmpretrain's MODELS
    with torch.no_grad(), pytest.raises(ValueError) as err:
        model(torch.randn(1, 3, 64, 64), mode='tensor')
    assert str(err.value) == (
        'BNLinearClsHead: the pooled feature (last backbone output) has 368 channels, '
        'head.in_channels says 448. Set head.in_channels=368, the channels it receives '
        '(backbone out_indices 0 and 1 give embed_dims[0], 2 and 3 embed_dims[1] and [2]). '
        f'Widths per variant ({WIDTHS}): {ALL_WIDTHS}.')


def test_channel_checks_compile_without_graph_breaks():
    """The checks compare ints from .shape, so they trace into one graph."""
    pytest.importorskip('mmdet', reason='mmdet (and a compiled mmcv) are needed for detection')
    pytest.importorskip('mmpretrain')
    from mmdet.registry import MODELS as DET
    from mmpretrain.registry import MODELS as CLS
    neck = DET.build(dict(type='EfficientViTFPN', in_channels=[8, 16], out_channels=8,
                          num_outs=3, num_extra_trans_convs=1)).eval()
    head = CLS.build(dict(type='BNLinearClsHead', num_classes=3, in_channels=16)).eval()
    feats = (torch.randn(1, 8, 8, 8), torch.randn(1, 16, 4, 4))
    pooled = (torch.randn(2, 16), )
    with torch.no_grad():
        for module, x in ((neck, feats), (head, pooled)):
            compiled = torch.compile(module, backend='eager', fullgraph=True)
            for got, want in zip(torch.utils._pytree.tree_leaves(compiled(x)),
                                 torch.utils._pytree.tree_leaves(module(x))):
                assert torch.equal(got, want)
