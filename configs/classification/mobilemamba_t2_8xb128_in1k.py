_base_ = './_base_/mobilemamba_8xb128_in1k.py'

# MobileMamba-T2: 8.8M parameters, 255M FLOPs at 192x192.
model = dict(backbone=dict(arch='t2', drop_path_rate=0.0), head=dict(in_channels=368))

# Train at 192x192; test resizes the short edge to int(192 / 0.875) = 219 and crops 192.
train_pipeline, test_pipeline = _base_.train_pipeline, _base_.test_pipeline
train_pipeline[1].scale = 192  # RandomResizedCrop
test_pipeline[1].scale, test_pipeline[2].crop_size = 219, 192  # ResizeEdge (short), CenterCrop
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
