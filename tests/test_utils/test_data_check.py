"""Missing datasets are named before anything is built: ``missing_dataset_paths`` and
``check_dataset_paths`` list every expected file or folder of a config (COCO, ADE20K,
ImageNet folders), and tools/train.py stops with that list and the option that fixes it."""
import os.path as osp

import pytest
from mmengine.config import Config

from mmmobilemamba.utils import check_dataset_paths, missing_dataset_paths

COCO_FILES = ('data/coco/annotations/instances_train2017.json', 'data/coco/train2017/',
              'data/coco/annotations/instances_val2017.json', 'data/coco/val2017/')
DETECTION = ('retinanet_mobilemamba_b1', 'mask-rcnn_mobilemamba_b1', 'ssdlite_mobilemamba_b1',
             'ssdlite_mobilemamba_b1_512')


@pytest.mark.parametrize('name', DETECTION)
def test_real_configs_read_standard_coco_layout(name, repo_root):
    pytest.importorskip('mmdet', reason='mmdet (and a compiled mmcv) are needed for detection')
    cfg = Config.fromfile(osp.join(repo_root, 'configs', 'detection', name + '.py'))
    assert set(missing_dataset_paths(cfg)) >= set(COCO_FILES)


def test_train_without_coco_names_expected_files(tmp_path, repo_root, run_tool):
    """A real detection config run from a folder without data/coco."""
    pytest.importorskip('mmdet', reason='mmdet (and a compiled mmcv) are needed for detection')
    config = osp.join(repo_root, 'configs', 'detection', 'retinanet_mobilemamba_b1.py')
    res = run_tool('tools/train.py', config, cwd=tmp_path, check=False)
    assert res.returncode != 0
    for path in COCO_FILES:
        assert path in res.stderr


def test_missing_dataset_message(tmp_path, repo_root, run_tool):
    """A real segmentation config run from a folder without data/ade stops before building
    anything."""
    config = osp.join(repo_root, 'configs', 'segmentation', 'deeplabv3_mobilemamba_b4.py')
    res = run_tool('tools/train.py', config, '--work-dir', tmp_path / 'w', cwd=tmp_path,
                   timeout=300, check=False)
    assert res.returncode != 0
    for path in ('data/ade/ADEChallengeData2016/images/training',
                 'data/ade/ADEChallengeData2016/annotations/training',
                 'data/ade/ADEChallengeData2016/images/validation',
                 'data/ade/ADEChallengeData2016/annotations/validation'):
        assert path in res.stderr, res.stderr[-3000:]
    assert 'Dataset not found' in res.stderr


def test_missing_classification_dataset_is_listed(tmp_path, toy_cls_cfg):
    """mmpretrain's ImageNet names its folder by ``split``, without data_prefix/ann_file."""
    cfg = toy_cls_cfg(str(tmp_path / 'nowhere'), str(tmp_path / 'w'))
    with pytest.raises(FileNotFoundError) as info:
        check_dataset_paths(cfg, splits=('train_dataloader', 'val_dataloader'))
    msg = str(info.value)
    assert 'Dataset not found' in msg and 'train_dataloader.dataset.data_root=' in msg
    for split in ('train', 'val'):
        assert osp.join(str(tmp_path / 'nowhere'), split) in msg
