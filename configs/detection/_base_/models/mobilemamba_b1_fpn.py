# MobileMamba-B1 and the EfficientViT-style FPN over its three stages that RetinaNet and
# Mask R-CNN share; each detector sets how many transposed convs add finer levels (strides 8
# and 4 below blocks1's 16) and what tops the pyramid.
_base_ = './mobilemamba_b1.py'

efficientvit_fpn = dict(
    _delete_=True, type='EfficientViTFPN', in_channels=[200, 376, 448], out_channels=256,
    start_level=0, num_outs=5)
