# benchmarks/ddp_check.py --device cpu (gloo): ddp_cls.py with tiny images and batches.
# torch's SyncBatchNorm takes only GPU tensors, so instead of syncing BN the backbone's BN
# is frozen and the head has none: 1 x 2N and 2 x N then agree to float32 rounding.
_base_ = './ddp_cls.py'

size = 32
iters = 3
pipeline = _base_.pipeline
pipeline[1].scale = (size, size)  # Resize
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(pipeline=pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(pipeline=pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=iters, val_interval=iters)
param_scheduler = _base_.param_scheduler
param_scheduler[0].end = iters
default_hooks = dict(checkpoint=dict(interval=iters))
model = dict(backbone=dict(norm_eval=True), head=dict(type='LinearClsHead'))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
sync_bn = None
