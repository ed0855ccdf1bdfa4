# Mask R-CNN (mmdet's mask-rcnn_r50_fpn) on MobileMamba-B1.
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py', './mobilemamba_b1_fpn.py']
# mmcv 2.1's CUDA RoIAlign has no bfloat16 kernel, the default --amp dtype; torchvision's gives
# the same numbers in float32 and runs in float32 under autocast (docs/get_started.md, "AMP").
model = dict(
    backbone=_base_.pop('mobilemamba_b1'),
    # strides 4, 8 (transposed convs), 16, 32, 64
    neck=dict(_base_.pop('efficientvit_fpn'), num_extra_trans_convs=2),
    roi_head=dict(bbox_roi_extractor=dict(roi_layer=dict(use_torchvision=True)),
                  mask_roi_extractor=dict(roi_layer=dict(use_torchvision=True))))
