# MobileMamba-B4 as every ADE20K config here fine-tunes it: blocks1..3 (200/376/448 channels,
# strides 16/32/64) with BatchNorm statistics trained. The segmentor fragments set
# backbone=_base_.pop('mobilemamba_b4'), which replaces mmseg's ResNet (_delete_) as a
# whole; pop() keeps this template out of the resolved config.
custom_imports = dict(imports=['mmmobilemamba'], allow_failed_imports=False)

# The paper fine-tunes the ImageNet weights; give them with
#   --cfg-options model.backbone.init_cfg.checkpoint=/path/to/MobileMamba_B4.pth
# Without them the backbone warns when training starts that its weights are random.
mobilemamba_b4 = dict(
    _delete_=True, type='MobileMamba', arch='b4', out_indices=(1, 2, 3), norm_eval=False,
    init_cfg=dict(type='Pretrained', checkpoint=None))
