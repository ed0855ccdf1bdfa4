# MobileMamba-B1 as every COCO config here uses it: blocks1..3 (200/376/448 channels, strides
# 16/32/64), BatchNorm statistics frozen on top of the ImageNet weights. A detector fragment
# sets backbone=_base_.pop('mobilemamba_b1'), which replaces mmdet's ResNet (_delete_) as a
# whole; pop() keeps this template out of the resolved config.
custom_imports = dict(imports=['mmmobilemamba'], allow_failed_imports=False)

# The paper fine-tunes the ImageNet weights; give them with
#   --cfg-options model.backbone.init_cfg.checkpoint=/path/to/MobileMamba_B1.pth
# Without them the backbone warns when training starts that its weights are random.
mobilemamba_b1 = dict(
    _delete_=True, type='MobileMamba', arch='b1', out_indices=(1, 2, 3), frozen_stages=-1,
    norm_eval=True, init_cfg=dict(type='Pretrained', checkpoint=None))
