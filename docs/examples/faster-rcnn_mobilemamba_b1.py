# Faster R-CNN + MobileMamba-B1 on COCO, 1x, composed as our Mask R-CNN config is: mmdet's
# Faster R-CNN model, our B1 backbone and EfficientViTFPN fragments, COCO, our AdamW 1x.
# Its RPN anchors (strides 4..64) and RoI extractor (4..32) need levels finer than
# MobileMamba's finest output (stride 16): two transposed-conv levels (strides 4 and 8) go in
# front of the FPN levels 16, 32, 64. Explained in docs/config_inheritance.md,
# "Finer strides: Faster R-CNN, FCOS, UPerNet".
#
#   python tools/train.py docs/examples/faster-rcnn_mobilemamba_b1.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=/path/to/MobileMamba_B1.pth
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    '../../configs/detection/_base_/models/mobilemamba_b1_fpn.py',  # + custom_imports
    'mmdet::_base_/datasets/coco_detection.py',
    '../../configs/detection/_base_/schedule_adamw_1x.py'
]
model = dict(
    backbone=_base_.pop('mobilemamba_b1'),  # blocks1..3: 200/376/448 ch, strides 16/32/64
    # outputs at strides 4, 8 (transposed convs), 16, 32, 64
    neck=dict(_base_.pop('efficientvit_fpn'), num_extra_trans_convs=2),
    # torchvision's RoIAlign: mmcv's has no bfloat16 kernel (see the Mask R-CNN fragment)
    roi_head=dict(bbox_roi_extractor=dict(roi_layer=dict(use_torchvision=True))))
train_dataloader = dict(batch_size=4, num_workers=4)  # x 8 GPUs: the schedule's lr
