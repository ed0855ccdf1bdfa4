# SSDLite + MobileMamba-B1 on COCO at 320x320, 120 epochs, 8 GPUs x 24 images (mmdet's SSDLite
# data, anchors and schedule length). Paper: 18.0M params, 1.7G FLOPs, 24.0 box AP
# (Tab. 5 / A6). The ImageNet weights:
#   --cfg-options model.backbone.init_cfg.checkpoint=/path/to/MobileMamba_B1.pth
_base_ = [
    'mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py', './_base_/models/mobilemamba_b1.py'
]
# FixedSSDHead: mmdet 3.3's SSDHead cannot predict (see mmmobilemamba/models/dense_heads).
custom_imports = dict(imports=['mmmobilemamba', 'mmmobilemamba.models.dense_heads'])

model = dict(
    # blocks1 (200 ch, stride 16), blocks2 (376 ch, stride 32)
    backbone=dict(_base_.pop('mobilemamba_b1'), out_indices=(1, 2)),
    neck=dict(
        in_channels=(200, 376),
        out_channels=(200, 376, 512, 256, 256, 128)),  # strides 16 ... 320 at 320x320
    bbox_head=dict(
        type='FixedSSDHead',
        in_channels=(200, 376, 512, 256, 256, 128)))  # anchors: strides 16,32,64,107,160,320

# The COCO recipe (_base_/schedule_adamw_1x.py) at lr 2.4e-3 for 8 GPUs x 24 images (mmdet's
# auto_scale_lr base) over 120 epochs.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2.4e-3, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=0.1, norm_type=2))
max_epochs = _base_.max_epochs
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', begin=max_epochs // 2, end=max_epochs,
         T_max=max_epochs // 2, by_epoch=True, eta_min=0)
]
default_hooks = dict(  # stop at NaN/inf loss; save RNG states so a resume is exact; refuse
    check_finite_loss=dict(type='CheckFiniteLossHook'),  # MMEngine's compile, which fails
    random_state=dict(type='RandomStateHook'), check_compile=dict(type='CheckCompileHook'))
