_base_ = './_base_/mobilemamba_8xb128_in1k.py'

# MobileMamba-B1: 17.1M parameters, 1.08G FLOPs at 256x256.
model = dict(backbone=dict(arch='b1', drop_path_rate=0.03))

# Train at 256x256; test resizes the short edge to int(256 / 0.875) = 292 and crops 256.
train_pipeline, test_pipeline = _base_.train_pipeline, _base_.test_pipeline
train_pipeline[1].scale = 256  # RandomResizedCrop
test_pipeline[1].scale, test_pipeline[2].crop_size = 292, 256  # ResizeEdge (short), CenterCrop
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
