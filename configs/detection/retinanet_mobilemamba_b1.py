# RetinaNet + MobileMamba-B1 on COCO, 1x schedule (12 epochs), 8 GPUs x 4 images.
# Paper: 27.1M params, 151G FLOPs, 39.6 box AP (Tab. 4 / A6).
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmmobilemamba'], allow_failed_imports=False)

# Official MobileMamba-B1 ImageNet checkpoint (path or URL). Leave None only to train from
# scratch on purpose: the backbone then warns loudly that it starts from random weights.
pretrained = None

model = dict(
    backbone=dict(
        _delete_=True,
        type='MobileMamba',
        arch='b1',
        out_indices=(1, 2, 3),  # blocks1..3, strides 16/32/64
        frozen_stages=-1,
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(
        _delete_=True,
        type='EfficientViTFPN',
        in_channels=[200, 376, 448],
        out_channels=256,
        start_level=0,
        add_extra_convs='on_input',
        num_outs=5,  # strides 8 (transposed conv), 16, 32, 64, 128 (extra conv)
        num_extra_trans_convs=1))

train_dataloader = dict(batch_size=4, num_workers=4)

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=0.1, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', begin=max_epochs // 2, end=max_epochs,
         T_max=max_epochs // 2, by_epoch=True, eta_min=0)
]
# lr 2e-4 is for 8 GPUs x 4 images; --auto-scale-lr rescales it for other batch sizes.
auto_scale_lr = dict(enable=False, base_batch_size=32)
default_hooks = dict(  # stop at NaN/inf loss; save RNG states so a resume is exact
    check_finite_loss=dict(type='CheckFiniteLossHook'), random_state=dict(type='RandomStateHook'))
