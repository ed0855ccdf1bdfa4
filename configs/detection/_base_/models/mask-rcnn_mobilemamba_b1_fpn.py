# Mask R-CNN (mmdet's mask-rcnn_r50_fpn) on MobileMamba-B1.
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py', './mobilemamba_b1_fpn.py']
model = dict(
    backbone=_base_.pop('mobilemamba_b1'),
    # strides 4, 8 (transposed convs), 16, 32, 64
    neck=dict(_base_.pop('efficientvit_fpn'), num_extra_trans_convs=2))
