# RetinaNet (mmdet's retinanet_r50_fpn, with its test-time augmentation) on MobileMamba-B1.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py', 'mmdet::retinanet/retinanet_tta.py',
    './mobilemamba_b1_fpn.py'
]
model = dict(
    backbone=_base_.pop('mobilemamba_b1'),
    # strides 8 (transposed conv), 16, 32, 64, 128 (extra conv)
    neck=dict(_base_.pop('efficientvit_fpn'), add_extra_convs='on_input',
              num_extra_trans_convs=1),
    # mmdet's focal loss in float32: mmcv's CUDA kernel overflows in float16 (--amp) and
    # has no bfloat16 version
    bbox_head=dict(loss_cls=dict(type='FP32FocalLoss')))
