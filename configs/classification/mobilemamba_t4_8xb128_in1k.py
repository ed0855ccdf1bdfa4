_base_ = './_base_/mobilemamba_8xb128_in1k.py'

# MobileMamba-T4: 14.2M parameters, 413M FLOPs at 192x192.
model = dict(
    backbone=dict(arch='t4', drop_path_rate=0.0), head=dict(in_channels=448))

# Train at 192x192; test resizes the short edge to int(192 / 0.875) = 219 and crops 192.
train_pipeline = _base_.train_pipeline
train_pipeline[1].scale = 192  # RandomResizedCrop
test_pipeline = _base_.test_pipeline
test_pipeline[1].scale = 219  # ResizeEdge (short edge, bicubic)
test_pipeline[2].crop_size = 192  # CenterCrop
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
