"""FixedSSDHead, the SSDLite configs' head: it predicts boxes where mmdet 3.3's SSDHead
fails (its predict path needs a loss_cls the SSDLite configs do not set)."""
import os.path as osp

import pytest
import torch

pytest.importorskip('mmdet', reason='mmdet (and a compiled mmcv) are needed for detection')

from mmdet.structures import DetDataSample  # noqa: E402


def test_ssdlite_predicts(repo_root, build_model):
    """mmdet 3.3's SSDHead dies in predict (no loss_cls); FixedSSDHead must not."""
    model = build_model(osp.join(repo_root, 'configs', 'detection',
                                 'ssdlite_mobilemamba_b1.py')).eval()
    sample = DetDataSample(metainfo=dict(img_shape=(320, 320), ori_shape=(320, 320),
                                         scale_factor=(1.0, 1.0)))
    with torch.no_grad():
        res = model(torch.randn(1, 3, 320, 320), [sample], mode='predict')
    assert res[0].pred_instances.bboxes.shape[1] == 4
