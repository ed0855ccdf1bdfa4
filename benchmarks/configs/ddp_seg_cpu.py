# benchmarks/ddp_check.py --device cpu (gloo): ddp_seg.py with tiny images and batches.
# torch's SyncBatchNorm takes only GPU tensors, so instead of syncing BN the backbone's BN
# is frozen and the decode head has none: 1 x 2N and 2 x N then agree to float32 rounding.
_base_ = './ddp_seg.py'

size = 64
iters = 3
pipeline = _base_.pipeline
pipeline[2].scale = (size, size)  # Resize
train_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False,
                        dataset=dict(pipeline=pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(pipeline=pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=iters, val_interval=iters)
param_scheduler = _base_.param_scheduler
param_scheduler[0].end = iters
default_hooks = dict(checkpoint=dict(interval=iters))
model = dict(data_preprocessor=dict(size=(size, size)), backbone=dict(norm_eval=True),
             decode_head=dict(norm_cfg=None))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
sync_bn = None
