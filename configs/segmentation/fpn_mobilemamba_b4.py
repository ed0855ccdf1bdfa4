# Semantic FPN on MobileMamba-B4, ADE20K 512x512, 160k iters, 8 images/GPU (paper Tab. 6/A8:
# 42.5 mIoU, 19.8M params, 5.6G FLOPs). The ImageNet weights of the backbone:
#   --cfg-options model.backbone.init_cfg.checkpoint=/path/to/MobileMamba_B4.pth
_base_ = ['./_base_/models/fpn_mobilemamba_b4.py', './_base_/ade20k_adamw_80k.py']

# The reference trains it twice as long (mmseg's 160k loop: validate and save every 16k),
# warms up longer, does not clip gradients and gives the decode head ('head' in its parameter
# names) a 10x lr.
max_iters = 160000
train_cfg = dict(max_iters=max_iters, val_interval=16000)
default_hooks = dict(checkpoint=dict(interval=16000))
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper', optimizer=_base_.optim_wrapper.optimizer,
    paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=10.)}),
    constructor='MergedGroupsOptimWrapperConstructor')  # two groups, not one per parameter
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='CosineAnnealingLR', T_max=max_iters // 2, eta_min=0, by_epoch=False,
         begin=max_iters // 2, end=max_iters)
]
