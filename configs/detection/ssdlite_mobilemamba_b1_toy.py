# ssdlite_mobilemamba_b1.py on the 3-class toy COCO at 192x192, CPU-sized: the data and
# schedule of _base_/toy_coco.py, here without Expand/MinIoURandomCrop and the 5x repeat, and
# trained BatchNorm (norm_eval=False: without ImageNet weights frozen statistics would not
# normalise). mmdet's SSDLite config holds its own data and schedule, so they are set here.
#   python -m mmmobilemamba.datasets.toy_detection data/toy/coco
#   python tools/train.py configs/detection/ssdlite_mobilemamba_b1_toy.py
_base_ = './ssdlite_mobilemamba_b1.py'

data_root = 'data/toy/coco/'
metainfo = dict(classes=('rectangle', 'circle', 'triangle'))
input_size = 192

model = dict(backbone=dict(norm_eval=False), bbox_head=dict(num_classes=3))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(times=1, dataset=dict(data_root=data_root, metainfo=metainfo,
                                       pipeline=train_pipeline)))
val_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

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
