"""The EfficientViTFPN neck: output strides for the RetinaNet, Mask R-CNN and plain-FPN
settings, which level each extra FPN conv refines, and its argument checks."""
import pytest
import torch

pytest.importorskip('mmdet', reason='mmdet (and a compiled mmcv) are needed for detection')

from mmmobilemamba.models.necks import EfficientViTFPN  # noqa: E402


def fpn_inputs(h: int = 256, w: int = 192):
    """B1's three stage outputs (strides 16, 32, 64) for an h x w image."""
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
