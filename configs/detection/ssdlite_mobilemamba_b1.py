# SSDLite + MobileMamba-B1 on COCO at 320x320, 120 epochs, 8 GPUs x 24 images.
# Paper: 18.0M params, 1.7G FLOPs, 24.0 box AP (Tab. 5 / A6).
_base_ = 'mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py'

# FixedSSDHead: mmdet 3.3's SSDHead cannot predict (see mmmobilemamba/models/dense_heads).
custom_imports = dict(imports=['mmmobilemamba', 'mmmobilemamba.models.dense_heads'],
                      allow_failed_imports=False)

# Official MobileMamba-B1 ImageNet checkpoint (path or URL). Leave None only to train from
# scratch on purpose: the backbone then warns loudly that it starts from random weights.
pretrained = None

model = dict(
    backbone=dict(
        _delete_=True,
        type='MobileMamba',
        arch='b1',
        out_indices=(1, 2),  # blocks1 (200 ch, stride 16), blocks2 (376 ch, stride 32)
        frozen_stages=-1,
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(
        in_channels=(200, 376),
        out_channels=(200, 376, 512, 256, 256, 128)),  # strides 16 ... 320 at 320x320
    bbox_head=dict(
        type='FixedSSDHead',
        in_channels=(200, 376, 512, 256, 256, 128)))  # anchors: strides 16,32,64,107,160,320

max_epochs = 120
train_cfg = dict(max_epochs=max_epochs)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2.4e-3, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=0.1, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', begin=max_epochs // 2, end=max_epochs,
         T_max=max_epochs // 2, by_epoch=True, eta_min=0)
]
# lr 2.4e-3 is for 8 GPUs x 24 images (base config); --auto-scale-lr rescales it.
auto_scale_lr = dict(enable=False, base_batch_size=192)
default_hooks = dict(  # stop at NaN/inf loss; save RNG states so a resume is exact
    check_finite_loss=dict(type='CheckFiniteLossHook'), random_state=dict(type='RandomStateHook'))
