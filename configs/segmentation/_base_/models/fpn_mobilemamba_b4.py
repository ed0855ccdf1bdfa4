# Semantic FPN on MobileMamba-B4 for ADE20K's 150 classes at 512x512: mmseg's FPN neck takes
# blocks1..3 (200/376/448 ch) and FPNHead merges them at strides 16/32/64 (one conv at 16 and
# 32, two at 64).
_base_ = ['mmseg::_base_/models/fpn_r50.py', './mobilemamba_b4.py']
model = dict(
    data_preprocessor=dict(size=(512, 512)), pretrained=None, backbone=_base_.pop('mobilemamba_b4'),
    neck=dict(in_channels=[200, 376, 448], num_outs=3),
    decode_head=dict(in_channels=[256, 256, 256], in_index=[0, 1, 2],
                     feature_strides=[16, 32, 64], num_classes=150))
