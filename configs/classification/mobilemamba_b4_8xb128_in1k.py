_base_ = './_base_/mobilemamba_8xb128_in1k.py'

# MobileMamba-B4: 17.1M parameters, 4.31G FLOPs at 512x512.
model = dict(
    backbone=dict(arch='b4', drop_path_rate=0.03), head=dict(in_channels=448))

# Train at 512x512; test resizes the short edge to int(512 / 0.875) = 585 and crops 512.
train_pipeline = _base_.train_pipeline
train_pipeline[1].scale = 512  # RandomResizedCrop
test_pipeline = _base_.test_pipeline
test_pipeline[1].scale = 585  # ResizeEdge (short edge, bicubic)
test_pipeline[2].crop_size = 512  # CenterCrop
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
