# SSDLite + MobileMamba-B1 on COCO at 512x512: the 320x320 config with only the input size
# changed ("keeping other parameters constant", paper Sec. 4.3; anchors included).
# Paper: 18.0M params, 4.4G FLOPs, 29.5 box AP (Tab. 5 / A6).
_base_ = './ssdlite_mobilemamba_b1.py'

input_size = 512
train_pipeline = _base_.train_pipeline
assert train_pipeline[4].type == 'Resize'  # after Expand and MinIoURandomCrop
train_pipeline[4].scale = (input_size, input_size)
test_pipeline = _base_.test_pipeline
assert test_pipeline[1].type == 'Resize'
test_pipeline[1].scale = (input_size, input_size)

train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
