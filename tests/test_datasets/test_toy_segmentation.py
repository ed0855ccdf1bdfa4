"""The toy ADE20K generator: ADE's folder layout and file names, label values, the same data
for one seed, and labels that mmseg's ADE20K pipeline (reduce_zero_label) maps as on ADE."""
import os
import os.path as osp

import numpy as np
from mmengine.registry import init_default_scope
from PIL import Image

from mmmobilemamba.datasets.toy_segmentation import TOY_CLASSES, make_toy_ade


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
