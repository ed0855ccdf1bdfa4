# The 3-class toy COCO in place of COCO, written by
#   python -m mmmobilemamba.datasets.toy_detection data/toy/coco
# (64 train + 16 val images of 160x160, boxes and masks). The 1x recipe shrunk to it: batch 4,
# lr 1e-3 after a 20-iteration warm-up, 12 epochs, validated once at the end. A toy config
# combines this with a detector fragment and sets 3 classes and trained BatchNorm
# (norm_eval=False: without ImageNet weights frozen statistics would not normalise).
_base_ = ['mmdet::_base_/datasets/coco_detection.py', './schedule_adamw_1x.py']

data_root = 'data/toy/coco/'
metainfo = dict(classes=('rectangle', 'circle', 'triangle'))
img_scale = (160, 160)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

# the schedule's ends are fixed, so `--cfg-options train_cfg.max_epochs=N` runs any N >= 1
max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', begin=max_epochs // 2, end=max_epochs,
         T_max=max_epochs // 2, by_epoch=True, eta_min=0)
]
default_hooks = dict(logger=dict(interval=5),
                     checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
