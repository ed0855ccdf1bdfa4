"""Broken image files in a dataset: garbage bytes or a JPEG cut inside its header stop the
toy training with mmcv's message naming the file (no hang, also from a DataLoader worker);
a JPEG cut inside its image data decodes partially, the limit of that convention."""
import glob
import os.path as osp
import shutil

import pytest


def corrupt_copy(src: str, dst: str, kind: str) -> str:
    """A copy of the toy set with one training image broken; returns that image's path."""
    shutil.copytree(src, dst)
    bad = sorted(glob.glob(osp.join(dst, 'train', '*', '*.jpg')))[3]
    with open(bad, 'rb') as f:
        data = f.read()
    with open(bad, 'wb') as f:
        f.write(b'\x00garbage, not a JPEG\xff' * 20 if kind == 'garbage' else data[:60])
    return bad


@pytest.mark.slow
@pytest.mark.parametrize('workers,kind', [(0, 'garbage'), (1, 'header_cut')])
def test_corrupt_training_image_is_reported_by_name(toy_imagenet, toy_cls_config, tmp_path,
                                                   workers, kind, run_tool, data_root_options):
    """Garbage bytes or a JPEG cut inside its header: the toy training stops with mmcv's
    'failed to load image: <path>' (in the main process or from the DataLoader worker),
    within the subprocess timeout, i.e. no hang."""
    root = str(tmp_path / 'data')
    bad = corrupt_copy(toy_imagenet, root, kind)
    res = run_tool('tools/train.py', toy_cls_config, '--work-dir', str(tmp_path / 'w'),
                   '--cfg-options', 'train_cfg.max_epochs=2', 'train_dataloader.batch_size=2',
                   f'train_dataloader.num_workers={workers}', *data_root_options(root),
                   timeout=240, check=False)
    assert res.returncode != 0
    assert f'failed to load image: {bad}' in res.stderr, res.stderr[-3000:]
    if workers:
        assert 'DataLoader worker process 0' in res.stderr


def test_jpeg_cut_inside_the_image_data_decodes_partially(toy_imagenet, tmp_path):
    """The limit of mmcv's convention: OpenCV (the pipelines' decoder) decodes a JPEG cut
    after its header without any error or warning, filling the missing part; such a file
    trains silently. docs/get_started.md (Failure modes) says how to find them."""
    from mmcv.transforms import LoadImageFromFile
    path = sorted(glob.glob(osp.join(toy_imagenet, 'train', '*', '*.jpg')))[0]
    cut = str(tmp_path / 'cut.jpg')
    with open(path, 'rb') as f:
        data = f.read()
    scan = data.index(b'\xff\xda')  # start of the entropy-coded image data
    with open(cut, 'wb') as f:
        f.write(data[:(scan + len(data)) // 2])
    img = LoadImageFromFile()(dict(img_path=cut))['img']
    assert img.shape == (32, 32, 3)
    from PIL import Image
    with pytest.raises(OSError, match='truncated'):
        Image.open(cut).load()
