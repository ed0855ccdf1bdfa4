# deeplabv3_mobilemamba_b4.py on the toy ADE20K (CPU, minutes; see _base_/toy_ade.py): the same
# model and optimizer with 4 classes, BN heads and random backbone weights.
_base_ = ['./_base_/models/deeplabv3_mobilemamba_b4.py', './_base_/toy_ade.py']
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(data_preprocessor=dict(size=_base_.crop_size),
             decode_head=dict(num_classes=_base_.num_classes, norm_cfg=norm_cfg),
             auxiliary_head=dict(num_classes=_base_.num_classes, norm_cfg=norm_cfg))
