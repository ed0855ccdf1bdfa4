_base_ = './_base_/mobilemamba_8xb128_in1k.py'

# MobileMamba-B2: 17.1M parameters, 2.43G FLOPs at 384x384.
model = dict(
    backbone=dict(arch='b2', drop_path_rate=0.03), head=dict(in_channels=448))

# Train at 384x384; test resizes the short edge to int(384 / 0.875) = 438 and crops 384.
train_pipeline = _base_.train_pipeline
train_pipeline[1].scale = 384  # RandomResizedCrop
test_pipeline = _base_.test_pipeline
test_pipeline[1].scale = 438  # ResizeEdge (short edge, bicubic)
test_pipeline[2].crop_size = 384  # CenterCrop
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
