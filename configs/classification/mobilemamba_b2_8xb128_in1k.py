_base_ = './mobilemamba_b1_8xb128_in1k.py'

# MobileMamba-B2: B1's network and recipe at 384x384 (17.1M parameters, 2.43G FLOPs).
model = dict(backbone=dict(arch='b2'))

# Train at 384x384; test resizes the short edge to int(384 / 0.875) = 438 and crops 384.
train_pipeline, test_pipeline = _base_.train_pipeline, _base_.test_pipeline
train_pipeline[1].scale = 384  # RandomResizedCrop
test_pipeline[1].scale, test_pipeline[2].crop_size = 438, 384  # ResizeEdge (short), CenterCrop
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
