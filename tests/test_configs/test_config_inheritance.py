"""The worked example of docs/config_inheritance.md: a config derived from ours by `_base_`
keeps what it does not override, changes what it does, and builds (model and dataset)."""
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DATASETS, MODELS, DefaultScope

pytest.importorskip('mmdet', reason='mmdet (and a compiled mmcv) are needed for detection')

EXAMPLE = osp.join('docs', 'examples', 'retinanet_mobilemamba_b1_custom.py')
BASE = osp.join('configs', 'detection', 'retinanet_mobilemamba_b1.py')
CLASSES = ('car', 'truck', 'bus')


@pytest.fixture(scope='module')
def cfgs(repo_root):
    """(the worked example, the config it derives from)."""
    return (Config.fromfile(osp.join(repo_root, EXAMPLE)),
            Config.fromfile(osp.join(repo_root, BASE)))


def test_overrides_take_effect(cfgs):
    cfg, base = cfgs
    assert cfg.model.bbox_head.num_classes == 3 != base.model.bbox_head.num_classes
    assert cfg.model.backbone.frozen_stages == 1
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained',
                                               checkpoint='checkpoints/mobilemamba_b1.pth')
    assert cfg.train_cfg.max_epochs == 6 and cfg.train_cfg.val_interval == 2
    assert [s.end for s in cfg.param_scheduler] == [500, 6]
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(5e-5)
    assert cfg.train_dataloader.batch_size == 8
    for loader, split in ((cfg.train_dataloader, 'train'), (cfg.val_dataloader, 'val'),
                          (cfg.test_dataloader, 'val')):
        ds = loader.dataset
        assert ds.data_root == 'data/traffic/' and tuple(ds.metainfo.classes) == CLASSES
        assert ds.ann_file == f'annotations/{split}.json'
        assert ds.data_prefix.img == f'images/{split}/'
    assert cfg.test_evaluator.ann_file == 'data/traffic/annotations/val.json'


def test_inherited_values_survive(cfgs):
    cfg, base = cfgs
    assert cfg.default_scope == 'mmdet'
    assert cfg.custom_imports == base.custom_imports
    for key in ('type', 'arch', 'out_indices', 'norm_eval'):
        assert cfg.model.backbone[key] == base.model.backbone[key]
    assert cfg.model.neck == base.model.neck
    for key in ('anchor_generator', 'loss_cls', 'loss_bbox', 'type'):
        assert cfg.model.bbox_head[key] == base.model.bbox_head[key]
    opt = cfg.optim_wrapper
    assert (opt.type, opt.optimizer.type, opt.optimizer.weight_decay) == ('OptimWrapper',
                                                                       'AdamW', 0.05)
    assert opt.clip_grad == base.optim_wrapper.clip_grad
    assert cfg.train_dataloader.dataset.pipeline == base.train_dataloader.dataset.pipeline
    assert cfg.train_dataloader.dataset.filter_cfg == base.train_dataloader.dataset.filter_cfg
    assert cfg.val_evaluator.metric == 'bbox' and cfg.val_evaluator.type == 'CocoMetric'
    assert cfg.default_hooks.checkpoint.interval == 2
    assert cfg.default_hooks.logger == base.default_hooks.logger


def test_example_model_builds_with_three_classes_and_frozen_stages(cfgs):
    cfg, _ = cfgs
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    head = model.bbox_head
    assert head.num_classes == 3
    assert head.retina_cls.out_channels == head.num_base_priors * 3  # sigmoid: no background
    bb = model.backbone
    for stage in (bb.patch_embed, bb.blocks1):
        assert all(not p.requires_grad for p in stage.parameters())
    for stage in (bb.blocks2, bb.blocks3):  # only the fixed Haar filters stay frozen there
        frozen = [n for n, p in stage.named_parameters() if not p.requires_grad]
        assert all(n.endswith(('.wt_filter', '.iwt_filter')) for n in frozen), frozen
        assert sum(p.requires_grad for p in stage.parameters()) > 50
    model.train()
    assert not bb.patch_embed.training and not bb.blocks1.training and bb.blocks2.training
    model.eval()
    with torch.no_grad():
        cls_scores, _ = model(torch.randn(1, 3, 128, 128), mode='tensor')
    assert [s.shape[1] for s in cls_scores] == [head.num_base_priors * 3] * 5


def test_example_dataset_reads_a_coco_format_folder(cfgs, tmp_path):
    """The dataset section is complete: a 3-class COCO json under data_root loads."""
    cfg, _ = cfgs
    (tmp_path / 'annotations').mkdir()
    (tmp_path / 'images' / 'train').mkdir(parents=True)
    images = [dict(id=i, file_name=f'{i}.jpg', width=640, height=480) for i in (1, 2)]
    anns = [dict(id=1, image_id=1, category_id=7, bbox=[10, 20, 200, 100], area=20000,
                 iscrowd=0),
            dict(id=2, image_id=2, category_id=9, bbox=[50, 50, 120, 240], area=28800,
                 iscrowd=0)]
    cats = [dict(id=i, name=n) for i, n in zip((7, 8, 9), CLASSES)]
    with open(tmp_path / 'annotations' / 'train.json', 'w') as f:
        json.dump(dict(images=images, annotations=anns, categories=cats), f)
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.data_root = str(tmp_path) + '/'
    with DefaultScope.overwrite_default_scope('mmdet'):
        ds = DATASETS.build(ds_cfg)
    assert len(ds) == 2
    labels = sorted(int(inst['bbox_label']) for i in range(2)
                    for inst in ds.get_data_info(i)['instances'])
    assert labels == [0, 2]  # 'car' and 'bus' in the config's class order
    assert ds.get_data_info(0)['img_path'] == osp.join(str(tmp_path), 'images/train/1.jpg')
