# fpn_mobilemamba_b4.py on the toy ADE20K (CPU, minutes; see _base_/toy_ade.py): the same
# model and optimizer with 4 classes, a BN head and random backbone weights.
_base_ = ['./_base_/models/fpn_mobilemamba_b4.py', './_base_/toy_ade.py']
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(data_preprocessor=dict(size=_base_.crop_size),
             decode_head=dict(num_classes=_base_.num_classes, norm_cfg=norm_cfg))
optim_wrapper = dict(  # fpn_mobilemamba_b4.py's: no clipping, 10x lr for the decode head
    _delete_=True, type='OptimWrapper', optimizer=_base_.optim_wrapper.optimizer,
    paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=10.)}),
    constructor='MergedGroupsOptimWrapperConstructor')  # two groups, not one per parameter
