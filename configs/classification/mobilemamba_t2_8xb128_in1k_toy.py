_base_ = './mobilemamba_t2_8xb128_in1k.py'

# A CPU smoke run of the T2 recipe on the toy dataset written by
#   python -m mmmobilemamba.datasets.toy_classification data/toy/imagenet
# (4 classes, 32 train + 8 val images each, 64x64). Same model, augmentation and optimizer;
# smaller images and batches, a 10-epoch schedule and a faster EMA.
data_root = 'data/toy/imagenet'
num_classes = 4
toy_metainfo = dict(classes=('red_disc', 'green_hstripes', 'blue_checker', 'yellow_cross'))

model = dict(head=dict(num_classes=num_classes))
data_preprocessor = dict(num_classes=num_classes)

train_pipeline, test_pipeline = _base_.train_pipeline, _base_.test_pipeline
train_pipeline[1].scale = 64  # RandomResizedCrop
test_pipeline[1].scale, test_pipeline[2].crop_size = 73, 64  # ResizeEdge: int(64 / 0.875)
train_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=toy_metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=toy_metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))  # top-5 of 4 classes is meaningless
test_evaluator = val_evaluator

# The cosine ends at epoch 10 whatever max_epochs says, so that `--cfg-options
# train_cfg.max_epochs=N` runs any N >= 1 (the recipe's open end would start after the run).
max_epochs = 10
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=1, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-2, by_epoch=True, begin=1, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
custom_hooks = [
    dict(type='EMAHook', ema_type='ForeachExponentialMovingAverage', momentum=0.05,
         update_buffers=True, priority='ABOVE_NORMAL')
]
default_hooks = dict(
    logger=dict(interval=4),
    checkpoint=dict(interval=5, max_keep_ckpts=1, save_best=None))
randomness = dict(seed=0)
