# PSPNet on MobileMamba-B4, ADE20K 512x512, 80k iters, 8 images/GPU (paper Tab. 6/A8:
# 36.9 mIoU, 20.5M params, 4.5G FLOPs). The pyramid pooling head decodes blocks3 (448 ch,
# stride 64); an FCN auxiliary head reads blocks2 (376 ch, stride 32).
_base_ = [
    'mmseg::_base_/models/pspnet_r50-d8.py', 'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_80k.py'
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
    decode_head=dict(in_channels=448, in_index=2, channels=256, num_classes=150),
    auxiliary_head=dict(in_channels=376, in_index=1, num_classes=150))

train_dataloader = dict(batch_size=8, num_workers=8)
val_dataloader = dict(batch_size=1, num_workers=2)
test_dataloader = val_dataloader

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=0.1, norm_type=2))
# lr 1.2e-4 goes with 4 GPUs x 8 images in the reference; `--auto-scale-lr` rescales it
auto_scale_lr = dict(enable=False, base_batch_size=32)

max_iters = 80000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', T_max=max_iters // 2, eta_min=0, by_epoch=False,
         begin=max_iters // 2, end=max_iters)
]
default_hooks = dict(  # stop at NaN/inf loss; save RNG states so a resume is exact
    check_finite_loss=dict(type='CheckFiniteLossHook'), random_state=dict(type='RandomStateHook'))
