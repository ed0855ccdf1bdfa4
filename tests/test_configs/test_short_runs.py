"""Every toy config runs for any length through tools/train.py: one training step (any
``train_cfg.max_epochs`` / ``max_iters`` >= 1) and its validation at the end, on a few
generated images. One segmentation run also takes its backbone weights from
``--cfg-options model.backbone.init_cfg.checkpoint=...`` and is then drawn by
``tools/test.py --show-dir``.

The tools run in this process (``main()`` with their command line), which spares each run
the seconds of importing torch and the task libraries."""
import glob
import json
import os.path as osp
import sys
import types
from typing import Dict, List

import pytest
import torch
from mmengine.config import Config

from mmmobilemamba.models import MobileMamba

pytestmark = pytest.mark.usefixtures('one_thread')

TASKS = ('classification', 'detection', 'segmentation')
SCOPES = {'classification': 'mmpretrain', 'detection': 'mmdet', 'segmentation': 'mmseg'}
# the validation metric each task's run must log
METRICS = {'classification': 'accuracy/top1', 'detection': 'coco/bbox_mAP',
           'segmentation': 'mIoU'}
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOYS = sorted(osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'configs', '*', '*_toy.py')))
SEG_TOY = 'configs/segmentation/fpn_mobilemamba_b4_toy.py'
WEIGHT = 'backbone.patch_embed.0.c.weight'  # the first conv of the stem


def task_of(config: str) -> str:
    return config.split('/')[1]


@pytest.fixture(scope='module')
def toy_roots(tmp_path_factory) -> Dict[str, str]:
    """The smallest toy dataset of each task: one training batch, one or a few val images."""
    from mmmobilemamba.datasets.toy_classification import make_toy_imagenet
    from mmmobilemamba.datasets.toy_detection import make_toy_coco
    from mmmobilemamba.datasets.toy_segmentation import make_toy_ade
    root = tmp_path_factory.mktemp('toy')
    imagenet = str(root / 'imagenet')
    make_toy_imagenet(imagenet, num_classes=4, train_per_class=1, val_per_class=1, size=64)
    coco = make_toy_coco(str(root / 'coco'), num_train=2, num_val=1, size=64, seed=0)
    ade = make_toy_ade(str(root / 'ade'), num_train=2, num_val=1, size=64)
    return dict(classification=imagenet, detection=coco, segmentation=ade)


def short_run_options(config: str, data_options: List[str]) -> List[str]:
    """``--cfg-options`` for one training step of ``config`` on the toy data that
    ``data_options`` (``data_root_options(root, config)``) point it at."""
    task = task_of(config)
    cfg = Config.fromfile(osp.join(REPO, config))
    opts = list(data_options)
    if task == 'detection':
        # after one step no box passes the usual score threshold: keep them all for the metric
        thr = 'rcnn.score_thr' if 'rcnn' in cfg.model.test_cfg else 'score_thr'
        opts.append(f'model.test_cfg.{thr}=0')
    length = 'max_iters' if 'max_iters' in cfg.train_cfg else 'max_epochs'
    batch = 4 if task == 'classification' else 2  # the whole training set: one step
    return opts + [f'train_cfg.{length}=1', f'train_dataloader.batch_size={batch}']


def run_tool_main(tool: types.ModuleType, work_dir: str, *args: str) -> None:
    """A tool's ``main()`` with ``args`` and ``--work-dir work_dir`` as its command line
    (``args`` ending in ``--cfg-options ...``). The run's visualizer is named after its work
    dir: mmdet's and mmseg's configs call theirs 'visualizer', and MMEngine keeps one
    instance per name and process, which a later run would otherwise log and draw into."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, 'argv', [tool.__file__, *args, f'visualizer.name={work_dir}',
                                    '--work-dir', work_dir])
        patch.setenv('LOCAL_RANK', '0')  # the tools set it; leave the environment as it was
        tool.main()


@pytest.fixture(scope='module')
def b4_checkpoint(tmp_path_factory) -> str:
    """A MobileMamba-B4 state_dict in the released (flat) layout, of known random weights."""
    torch.manual_seed(7)
    path = str(tmp_path_factory.mktemp('weights') / 'mobilemamba_b4.pth')
    torch.save(MobileMamba('b4').state_dict(), path)
    return path


@pytest.fixture(scope='module')
def short_runs(toy_roots, b4_checkpoint, tmp_path_factory, import_tool,
               data_root_options) -> Dict[str, str]:
    """Work dir of each toy config after tools/train.py with length 1; SEG_TOY starts from
    b4_checkpoint."""
    train = import_tool('tools/train.py')
    work_dirs = {}
    for config in TOYS:
        task = task_of(config)
        if task != 'classification':
            pytest.importorskip(SCOPES[task])
        work_dirs[config] = str(tmp_path_factory.mktemp('work'))
        opts = short_run_options(
            config, data_root_options(toy_roots[task], osp.join(REPO, config)))
        if config == SEG_TOY:
            opts.append(f'model.backbone.init_cfg.checkpoint={b4_checkpoint}')
        run_tool_main(train, work_dirs[config], osp.join(REPO, config), '--cfg-options', *opts)
    return work_dirs


@pytest.mark.slow
@pytest.mark.parametrize('config', TOYS)
def test_toy_config_trains_one_step_and_validates(short_runs, config):
    work_dir = short_runs[config]
    task = task_of(config)
    ckpts = glob.glob(osp.join(work_dir, '*_1.pth'))
    assert len(ckpts) == 1, ckpts
    meta = torch.load(ckpts[0], map_location='cpu', weights_only=False)['meta']
    assert meta['iter'] == 1
    (scalars, ) = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(scalars) as f:
        logged = [json.loads(line) for line in f]
    values = [r[METRICS[task]] for r in logged if METRICS[task] in r]
    assert len(values) == 1 and 0 <= values[0] <= 100, logged
    # the configs' init_cfg=dict(type='Pretrained', checkpoint=None): the backbone says at
    # the start of training that its weights are random, unless a checkpoint was given
    (log, ) = glob.glob(osp.join(work_dir, '*', '*.log'))
    with open(log) as f:
        text = f.read()
    expected = 'backbone tensors from' if config == SEG_TOY else 'starts from RANDOM weights'
    assert expected in text


@pytest.mark.slow
def test_backbone_weights_from_cfg_options(short_runs, b4_checkpoint):
    """init_cfg.checkpoint loaded the file: after one AdamW step (lr 1e-5 in the warm-up)
    the stem differs from it by about 1e-5, where a random init differs by about 0.1."""
    (ckpt, ) = glob.glob(osp.join(short_runs[SEG_TOY], 'iter_1.pth'))
    trained = torch.load(ckpt, map_location='cpu', weights_only=False)['state_dict'][WEIGHT]
    given = torch.load(b4_checkpoint, map_location='cpu')[WEIGHT.replace('backbone.', '', 1)]
    assert (trained - given).abs().max() < 1e-4
    assert given.abs().max() > 1e-2  # a tolerance far below the weights' own size


@pytest.mark.slow
def test_segmentation_show_dir_draws_every_val_image(short_runs, toy_roots, tmp_path,
                                                      import_tool, data_root_options):
    show = tmp_path / 'show'
    run_tool_main(import_tool('tools/test.py'), str(tmp_path), osp.join(REPO, SEG_TOY),
                  osp.join(short_runs[SEG_TOY], 'iter_1.pth'), '--show-dir', str(show),
                  '--cfg-options', *short_run_options(SEG_TOY, data_root_options(
                      toy_roots['segmentation'], osp.join(REPO, SEG_TOY))))
    drawn = glob.glob(str(show / '**' / '*.png'), recursive=True)
    assert [osp.basename(p) for p in drawn] == ['test_ADE_val_00000001.jpg_0.png']
