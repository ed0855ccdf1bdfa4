# The toy ADE20K (CPU, minutes) in place of ADE20K, written by
#   python -m mmmobilemamba.datasets.toy_segmentation data/toy/ade
# (32 train + 8 val images of 128x128). The fine-tuning recipe shrunk to it: 128x128 crops,
# batch 4, 60 iterations at lr 1e-3 after a 5-iteration warm-up. A toy config combines this
# with a segmentor fragment and sets 4 classes and BN heads (one CPU process: no SyncBN).
_base_ = './ade20k_adamw_80k.py'

data_root = 'data/toy/ade/ADEChallengeData2016'
# ADE20K's first four classes: the toy labels 1..4 keep their ADE ids
metainfo = dict(classes=('wall', 'building', 'sky', 'floor'))
num_classes = 4
crop_size = (128, 128)
scale = (512, 128)  # ADE's (2048, 512) scaled to 128-pixel images

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

# a higher lr and a short warm-up so that 60 CPU iterations learn the toy classes; the
# schedule's ends are fixed, so `--cfg-options train_cfg.max_iters=N` runs any N >= 1
optim_wrapper = dict(optimizer=dict(lr=1e-3))
max_iters = 60
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=5),
    dict(type='CosineAnnealingLR', T_max=max_iters // 2, eta_min=0, by_epoch=False,
         begin=max_iters // 2, end=max_iters)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
# visualization: draw every image (with `tools/test.py --show-dir`), the val set is 8 images
default_hooks = dict(
    logger=dict(interval=10), checkpoint=dict(interval=max_iters, max_keep_ckpts=1),
    visualization=dict(interval=1))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
