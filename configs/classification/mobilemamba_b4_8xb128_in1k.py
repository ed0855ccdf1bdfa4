_base_ = './mobilemamba_b1_8xb128_in1k.py'

# MobileMamba-B4: B1's network and recipe at 512x512 (17.1M parameters, 4.31G FLOPs).
model = dict(backbone=dict(arch='b4'))

# Train at 512x512; test resizes the short edge to int(512 / 0.875) = 585 and crops 512.
train_pipeline, test_pipeline = _base_.train_pipeline, _base_.test_pipeline
train_pipeline[1].scale = 512  # RandomResizedCrop
test_pipeline[1].scale, test_pipeline[2].crop_size = 585, 512  # ResizeEdge (short), CenterCrop
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
