# The paper's COCO recipe, 1x (12 epochs): AdamW at lr 2e-4 for 8 GPUs x 4 images with
# gradient clipping, a 500-iteration linear warm-up, then cosine over the second half.
# mmdet's 1x loop (validate every epoch) and runtime.
_base_ = ['mmdet::_base_/schedules/schedule_1x.py', 'mmdet::_base_/default_runtime.py']

max_epochs = 12
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=0.1, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', begin=max_epochs // 2, end=max_epochs,
         T_max=max_epochs // 2, by_epoch=True, eta_min=0)
]
# lr 2e-4 is for 8 GPUs x 4 images; --auto-scale-lr rescales it for other batch sizes.
auto_scale_lr = dict(enable=False, base_batch_size=32)
default_hooks = dict(  # stop at NaN/inf loss; save RNG states so a resume is exact; refuse
    check_finite_loss=dict(type='CheckFiniteLossHook'),  # MMEngine's compile, which fails
    random_state=dict(type='RandomStateHook'), check_compile=dict(type='CheckCompileHook'))
