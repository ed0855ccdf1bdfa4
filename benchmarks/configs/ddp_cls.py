# benchmarks/ddp_check.py, classification, on GPUs: the T2 toy recipe made deterministic and
# iteration-based, so that 1 GPU x batch 2N and 2 GPUs x batch N see the same global batches.
# ddp_check.py writes the toy data, sets its data_root and the batch of each run.
_base_ = '../../configs/classification/mobilemamba_t2_8xb128_in1k_toy.py'

size = 192  # image side (ddp_check.py writes the toy images at this size)
iters = 50
# no random augmentation: each rank would draw its own
pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(size, size)),
            dict(type='PackInputs')]
# N = 128 images per GPU (the recipe's); unshuffled, so both runs see the same batches
train_dataloader = dict(
    batch_size=128, num_workers=8, persistent_workers=True, drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=False), dataset=dict(pipeline=pipeline))
val_dataloader = dict(num_workers=8, persistent_workers=True, dataset=dict(pipeline=pipeline))
test_dataloader = val_dataloader
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=iters, val_interval=iters)
# no Mixup/CutMix: they mix within each rank's batch, not within the global one
model = dict(train_cfg=None)
# a linear warm-up over the whole run instead of the epoch-based toy schedule
param_scheduler = [dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=iters)]
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(by_epoch=False, interval=iters, max_keep_ckpts=1, save_best=None))
log_processor = dict(by_epoch=False, window_size=1)  # raw per-iteration values
# the loss of the global batch in the log (MMEngine logs rank 0's half); EMA as in the toy
custom_hooks = _base_.custom_hooks + [dict(type='RankMeanLossHook', priority='HIGHEST')]
env_cfg = dict(cudnn_benchmark=False,
               mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
sync_bn = 'torch'
find_unused_parameters = False
