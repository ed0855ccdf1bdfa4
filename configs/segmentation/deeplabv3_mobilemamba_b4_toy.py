# DeepLabv3 + MobileMamba-B4 on the toy ADE20K (CPU, minutes): same model and optimizer as
# deeplabv3_mobilemamba_b4.py, but 4 classes, 128x128 crops, BN, random init, 60 iters at lr 1e-3.
# Data: python -m mmmobilemamba.datasets.toy_segmentation data/toy/ade
_base_ = './deeplabv3_mobilemamba_b4.py'

data_root = 'data/toy/ade/ADEChallengeData2016'
# ADE20K's first four classes: the toy labels 1..4 keep their ADE ids
metainfo = dict(classes=('wall', 'building', 'sky', 'floor'))
num_classes = 4
crop_size = (128, 128)
scale = (512, 128)  # ADE's (2048, 512) scaled to 128-pixel images
norm_cfg = dict(type='BN', requires_grad=True)

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(init_cfg=None),
    decode_head=dict(num_classes=num_classes, norm_cfg=norm_cfg),
    auxiliary_head=dict(num_classes=num_classes, norm_cfg=norm_cfg))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=scale, ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader

# a higher lr and a short warm-up so that 60 CPU iterations learn the toy classes
optim_wrapper = dict(optimizer=dict(lr=1e-3))
max_iters = 60
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=5),
    dict(type='CosineAnnealingLR', T_max=max_iters // 2, eta_min=0, by_epoch=False,
         begin=max_iters // 2, end=max_iters)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=10), checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
