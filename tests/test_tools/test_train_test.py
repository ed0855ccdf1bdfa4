"""tools/train.py and tools/test.py on one toy config per task: `--cfg-options` overrides
reach the run, `--resume` (no path) continues from the work dir's latest checkpoint instead
of starting over, and tools/test.py evaluates the resumed checkpoint with the real metric."""
import json
import os
import os.path as osp
import re
from typing import Callable, List, NamedTuple

import pytest
import torch
from mmengine.config import Config


class Task(NamedTuple):
    config: str
    by_epoch: bool          # epoch-based loop (epoch_N.pth) or iteration-based (iter_N.pth)
    scope: str              # the task library, skipped when missing
    make_data: Callable[[str], List[str]]  # writes toy data, returns --cfg-options for it
    train_opts: List[str]   # what makes the toy run tiny (1 iteration per epoch)
    test_opts: List[str]
    metric: str             # printed by tools/test.py


def classification_data(root: str) -> List[str]:
    from mmmobilemamba.datasets.toy_classification import make_toy_imagenet
    make_toy_imagenet(root, num_classes=4, train_per_class=4, val_per_class=2, size=64)
    return [f'{s}_dataloader.dataset.data_root={root}' for s in ('train', 'val', 'test')]


def detection_data(root: str) -> List[str]:
    from mmmobilemamba.datasets.toy_detection import make_toy_coco
    make_toy_coco(root, num_train=2, num_val=2, size=128, seed=0)
    ann = osp.join(root, 'annotations', 'instances_val2017.json')
    return [f'{s}_dataloader.dataset.data_root={root}/' for s in ('train', 'val', 'test')] + [
        f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}']


def segmentation_data(root: str) -> List[str]:
    from mmmobilemamba.datasets.toy_segmentation import make_toy_ade
    data_root = make_toy_ade(root, num_train=4, num_val=2)
    return [f'{s}_dataloader.dataset.data_root={data_root}' for s in ('train', 'val', 'test')]


TASKS = {
    'classification': Task(
        'configs/classification/mobilemamba_t2_8xb128_in1k_toy.py', True, 'mmpretrain',
        classification_data, [], ['test_dataloader.batch_size=4'], 'accuracy/top1'),
    'detection': Task(
        'configs/detection/retinanet_mobilemamba_b1_toy.py', True, 'mmdet', detection_data,
        ['train_dataloader.batch_size=2'],
        # after two steps no box passes the usual threshold; keep them all so AP exists
        ['model.test_cfg.score_thr=0'], 'coco/bbox_mAP_50'),
    'segmentation': Task(
        'configs/segmentation/fpn_mobilemamba_b4_toy.py', False, 'mmseg', segmentation_data,
        ['train_dataloader.batch_size=2'], ['test_dataloader.batch_size=1'], 'mIoU'),
}


def train_records(work_dir: str, run: int) -> List[dict]:
    """Training log lines (scalars.json) of the ``run``-th run (0-based) in the work dir."""
    runs = sorted(d for d in os.listdir(work_dir) if re.fullmatch(r'\d{8}_\d{6}', d))
    path = osp.join(work_dir, runs[run], 'vis_data', 'scalars.json')
    with open(path) as f:
        return [r for r in map(json.loads, f) if 'loss' in r]


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(TASKS))
def test_train_resume_and_test(name, tmp_path, repo_root, run_tool):
    task = TASKS[name]
    pytest.importorskip(task.scope)
    config, work = osp.join(repo_root, task.config), str(tmp_path / 'work')
    data = task.make_data(str(tmp_path / 'data'))
    unit, ckpt = ('max_epochs', 'epoch_{}.pth') if task.by_epoch else ('max_iters', 'iter_{}.pth')
    common = ['default_hooks.checkpoint.interval=1', 'default_hooks.logger.interval=1',
              'train_cfg.val_begin=100', *task.train_opts, *data]

    # 1. two units (one iteration each), stopped there by --cfg-options
    run_tool('tools/train.py', config, '--work-dir', work,
             '--cfg-options', f'train_cfg.{unit}=2', *common, cwd=tmp_path)
    first = torch.load(osp.join(work, ckpt.format(2)), map_location='cpu', weights_only=False)
    assert (first['meta']['epoch'], first['meta']['iter']) == ((2, 2) if task.by_epoch
                                                               else (0, 2))
    assert not osp.exists(osp.join(work, ckpt.format(3)))
    assert [r['iter'] for r in train_records(work, 0)] == [1, 2]

    # 2. --resume without a path: continues from the latest checkpoint to 3 units
    out = run_tool('tools/train.py', config, '--work-dir', work, '--resume',
                   '--cfg-options', f'train_cfg.{unit}=3', *common, cwd=tmp_path).output
    latest = osp.join(work, ckpt.format(2))
    assert f'Auto resumed from the latest checkpoint {latest}' in out, out[-3000:]
    assert re.search(r'resumed epoch: %d, iter: 2' % (2 if task.by_epoch else 0), out)
    assert [r['iter'] for r in train_records(work, 1)] == [3]  # only the new iteration ran
    final = torch.load(osp.join(work, ckpt.format(3)), map_location='cpu', weights_only=False)
    assert final['meta']['iter'] == 3
    assert final['meta']['epoch'] == (3 if task.by_epoch else 0)
    dumped = Config.fromfile(osp.join(work, osp.basename(config)))
    assert dumped.train_cfg[unit] == 3 and dumped.default_hooks.logger.interval == 1

    # 3. tools/test.py on the resumed checkpoint, with its own overrides
    out = run_tool('tools/test.py', config, osp.join(work, ckpt.format(3)), '--work-dir', work,
                   '--cfg-options', *task.test_opts, *data, cwd=tmp_path).output
    found = re.findall(re.escape(task.metric) + r':\s*([-\d.]+)', out)
    assert found, out[-3000:]
    assert 0.0 <= float(found[-1]) <= 100.0
