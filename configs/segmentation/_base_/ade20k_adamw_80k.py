# ADE20K at 512x512 with the reference's fine-tuning recipe: 8 images per GPU, AdamW at
# lr 1.2e-4 with gradient clipping, a linear warm-up, then cosine over the second half of 80k
# iterations. mmseg's ADE20K pipelines, runtime and 80k loop (validate and save every 8k).
_base_ = [
    'mmseg::_base_/datasets/ade20k.py', 'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py'
]

train_dataloader = dict(batch_size=8, num_workers=8)
val_dataloader = dict(batch_size=1, num_workers=2)
test_dataloader = val_dataloader

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=0.1, norm_type=2))
# lr 1.2e-4 goes with 4 GPUs x 8 images in the reference; `--auto-scale-lr` rescales it
auto_scale_lr = dict(enable=False, base_batch_size=32)

max_iters = 80000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', T_max=max_iters // 2, eta_min=0, by_epoch=False,
         begin=max_iters // 2, end=max_iters)
]
default_hooks = dict(  # stop at NaN/inf loss; save RNG states so a resume is exact; refuse
    check_finite_loss=dict(type='CheckFiniteLossHook'),  # MMEngine's compile, which fails
    random_state=dict(type='RandomStateHook'), check_compile=dict(type='CheckCompileHook'))
