# Semantic FPN on MobileMamba-B4, ADE20K 512x512, 160k iters, 8 images/GPU (paper Tab. 6/A8:
# 42.5 mIoU, 19.8M params, 5.6G FLOPs). mmseg's FPN neck takes blocks1..3 (200/376/448 ch)
# and FPNHead merges them at strides 16/32/64 (one conv at 16 and 32, two at 64).
_base_ = [
    'mmseg::_base_/models/fpn_r50.py', 'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_160k.py'
]
import os  # noqa: E402  (imports after _base_ keep this a plain mmengine config)
import warnings  # noqa: E402

custom_imports = dict(imports=['mmmobilemamba'], allow_failed_imports=False)

# Official MobileMamba-B4 ImageNet checkpoint: export MOBILEMAMBA_B4_CKPT=/path/to/b4.pth
b4_checkpoint = os.environ.get('MOBILEMAMBA_B4_CKPT', '')
if not b4_checkpoint:
    warnings.warn('\n' + '!' * 79 + '\nMOBILEMAMBA_B4_CKPT is not set: the MobileMamba-B4 '
                  'backbone starts from RANDOM weights.\nThe paper fine-tunes ImageNet '
                  'weights; export MOBILEMAMBA_B4_CKPT=/path/to/mobilemamba_b4.pth.\n'
                  + '!' * 79)

crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='MobileMamba',
        arch='b4',
        out_indices=(1, 2, 3),  # blocks1..3: 200/376/448 ch, strides 16/32/64
        norm_eval=False,
        init_cfg=dict(type='Pretrained', checkpoint=b4_checkpoint) if b4_checkpoint else None),
    neck=dict(in_channels=[200, 376, 448], num_outs=3),
    decode_head=dict(
        in_channels=[256, 256, 256],
        in_index=[0, 1, 2],
        feature_strides=[16, 32, 64],
        num_classes=150))

train_dataloader = dict(batch_size=8, num_workers=8)
val_dataloader = dict(batch_size=1, num_workers=2)
test_dataloader = val_dataloader

# no gradient clipping; the decode head ('head' in its parameter names) learns 10x faster
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=10.)}))
# lr 1.2e-4 goes with 4 GPUs x 8 images in the reference; `--auto-scale-lr` rescales it
auto_scale_lr = dict(enable=False, base_batch_size=32)

max_iters = 160000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='CosineAnnealingLR', T_max=max_iters // 2, eta_min=0, by_epoch=False,
         begin=max_iters // 2, end=max_iters)
]
default_hooks = dict(  # stop at NaN/inf loss; save RNG states so a resume is exact
    check_finite_loss=dict(type='CheckFiniteLossHook'), random_state=dict(type='RandomStateHook'))
