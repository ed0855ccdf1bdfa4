# benchmarks/ddp_check.py, segmentation, on GPUs: the Semantic FPN-B4 toy recipe made
# deterministic, so that 1 GPU x batch 2N and 2 GPUs x batch N see the same global batches.
# ddp_check.py writes the toy data, sets its data_root and the batch of each run.
_base_ = '../../configs/segmentation/fpn_mobilemamba_b4_toy.py'

size = 512  # image side (ddp_check.py writes the toy images at this size)
iters = 40
# no random augmentation: each rank would draw its own
pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', reduce_zero_label=True),
            dict(type='Resize', scale=(size, size), keep_ratio=False),
            dict(type='PackSegInputs')]
# N = 8 images per GPU (the recipe's); unshuffled, so both runs see the same batches
train_dataloader = dict(
    batch_size=8, num_workers=8, persistent_workers=True, drop_last=True,
    sampler=dict(type='InfiniteSampler', shuffle=False), dataset=dict(pipeline=pipeline))
val_dataloader = dict(num_workers=8, persistent_workers=True, dataset=dict(pipeline=pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=iters, val_interval=iters)
# no dropout or stochastic depth: their masks are drawn per rank
model = dict(data_preprocessor=dict(size=(size, size)), backbone=dict(drop_path_rate=0.0),
             decode_head=dict(dropout_ratio=0.0))
# a linear warm-up over the whole run instead of the toy schedule
param_scheduler = [dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=iters)]
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(by_epoch=False, interval=iters, max_keep_ckpts=1, save_best=None))
log_processor = dict(by_epoch=False, window_size=1)  # raw per-iteration values
# the loss of the global batch in the log (MMEngine logs rank 0's half)
custom_hooks = [dict(type='RankMeanLossHook', priority='HIGHEST')]
env_cfg = dict(cudnn_benchmark=False,
               mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
sync_bn = 'torch'
find_unused_parameters = False
