"""The toy ImageNet generator: mmpretrain's ImageNet reads its folders, classes and labels,
and the same seed writes byte-identical images."""
import glob
import os.path as osp

import pytest
from mmpretrain.datasets import ImageNet

from mmmobilemamba.datasets.toy_classification import make_toy_imagenet, toy_class_names


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
