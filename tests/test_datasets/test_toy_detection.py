"""The toy COCO generator: valid COCO annotations (boxes and polygons that fill them) that
pycocotools reads, byte-identical for one seed, and its command line."""
import os
import os.path as osp
import sys

import pytest

pytest.importorskip('mmdet', reason='mmdet (and a compiled mmcv) are needed for detection')

from mmmobilemamba.datasets.toy_detection import CLASSES, make_toy_coco  # noqa: E402
from mmmobilemamba.datasets.toy_detection import main as toy_main  # noqa: E402


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
