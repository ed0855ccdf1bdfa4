# FCOS + MobileMamba-B1 on COCO, 1x: mmdet's own FCOS config with our B1 backbone and
# EfficientViTFPN fragments. FCOS places its points at strides 8..128 while MobileMamba's
# finest output is at stride 16: one transposed-conv level (stride 8) goes in front of the FPN
# levels 16, 32, 64, and an extra conv on the last output gives 128. Explained in
# docs/config_inheritance.md, "Finer strides: Faster R-CNN, FCOS, UPerNet".
#
#   python tools/train.py docs/examples/fcos_mobilemamba_b1.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=/path/to/MobileMamba_B1.pth
_base_ = [
    'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py',
    '../../configs/detection/_base_/models/mobilemamba_b1_fpn.py'  # + custom_imports
]
model = dict(
    # the base normalises for a Caffe ResNet (BGR, std 1); MobileMamba was trained on
    # ImageNet-normalised RGB
    data_preprocessor=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True),
    backbone=_base_.pop('mobilemamba_b1'),  # blocks1..3: 200/376/448 ch, strides 16/32/64
    # outputs at strides 8 (transposed conv), 16, 32, 64, 128 (extra conv, as the base's)
    neck=dict(_base_.pop('efficientvit_fpn'), add_extra_convs='on_output',
              relu_before_extra_convs=True, num_extra_trans_convs=1),
    # the focal loss in float32, so that --amp trains (see mmmobilemamba FP32FocalLoss)
    bbox_head=dict(loss_cls=dict(type='FP32FocalLoss')))

# The base carries its own SGD schedule, so the AdamW 1x of
# configs/detection/_base_/schedule_adamw_1x.py is restated here.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=0.1, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', begin=6, end=12, T_max=6, by_epoch=True, eta_min=0)
]
auto_scale_lr = dict(base_batch_size=32)  # lr 2e-4 is for 8 GPUs x 4 images
train_dataloader = dict(batch_size=4, num_workers=4)
