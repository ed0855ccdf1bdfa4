# MobileMamba on ImageNet-1k: the paper's 300-epoch recipe for 8 GPUs x 128 images.
# mmpretrain's Swin/DeiT ImageNet base already holds the DeiT augmentation that the paper
# follows (RandomResizedCrop + flip + RandAugment rand-m9-mstd0.5-inc1 + RandomErasing .25,
# bicubic, pillow; test: short edge res / 0.875, centre crop) at 224; variant files set the
# arch, the head width and their resolution.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmmobilemamba'], allow_failed_imports=False)

# model: mixup .8 / cutmix 1.0 (one of the two per batch, as timm's switch_prob .5) on
# label-smoothed (.1) soft targets. No ColorJitter: timm skips it when RandAugment is on.
model = dict(
    type='ImageClassifier',
    # Random init is the ImageNet recipe; to start from released weights instead (fine-tuning):
    #   --cfg-options model.backbone.init_cfg.checkpoint=/path/to/MobileMamba_S6.pth
    # (the backbone warns when training starts without them).
    backbone=dict(type='MobileMamba', arch='s6', init_cfg=dict(type='Pretrained', checkpoint=None)),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='BNLinearClsHead',
        num_classes=1000,
        in_channels=448,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')),
    train_cfg=dict(
        augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)],
        probs=[0.5, 0.5]))

# data: 128 images per GPU. The fixed-size training crops are stacked in the workers
# (default_collate), so the data preprocessor flips and normalises the batch at once, not each
# image with its own kernels; the labels travel as one tensor (one_storage_collate).
train_dataloader = dict(batch_size=128, num_workers=8, persistent_workers=True, drop_last=True,
                        collate_fn=dict(type='one_storage_collate', base='default_collate'))
val_dataloader = dict(batch_size=128, num_workers=8, persistent_workers=True)
test_dataloader = val_dataloader

# schedule: AdamW lr 1.5e-3 for 1024 images (--auto-scale-lr rescales it), no weight decay
# on norms, biases and 1-D parameters (as timm's optimizer factory), grad-norm clip 5. The
# constructor merges mmengine's per-parameter groups into those two.
optim_wrapper = dict(
    constructor='MergedGroupsOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1.5e-3, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        _delete_=True, norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0),
    clip_grad=dict(max_norm=5.0))
# 20 warm-up epochs from lr / 1000, then per-iteration cosine to lr / 100 at max_epochs.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=20,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-2, by_epoch=True, begin=20,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
auto_scale_lr = dict(base_batch_size=1024)

# runtime: EMA of weights and BN statistics with decay .9998 (mmengine's momentum = 1 - decay);
# validation, testing and saved state_dicts use the EMA weights. mmengine's EMA, updated with
# multi-tensor kernels (same numbers, same checkpoints).
custom_hooks = [
    dict(type='EMAHook', ema_type='ForeachExponentialMovingAverage', momentum=2e-4,
         update_buffers=True, priority='ABOVE_NORMAL')
]
# check_finite_loss stops at the first NaN/inf loss naming the iteration; random_state saves
# the random generators in checkpoints so that --resume continues them exactly; check_compile
# refuses MMEngine's compile option (it fails inside the optimizer step), naming --cuda-graph.
# They live in default_hooks (not custom_hooks) so that configs replacing custom_hooks keep them.
default_hooks = dict(
    logger=dict(interval=100),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3, save_best='auto'),
    check_finite_loss=dict(type='CheckFiniteLossHook'),
    random_state=dict(type='RandomStateHook'),
    check_compile=dict(type='CheckCompileHook'))
