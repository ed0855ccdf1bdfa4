# ssdlite_mobilemamba_b1_512.py on the 3-class toy COCO at 256x256, CPU-sized. The 512 recipe
# is the 320 one at another input size, so this is ssdlite_mobilemamba_b1_toy.py at 256.
#   python -m mmmobilemamba.datasets.toy_detection data/toy/coco
#   python tools/train.py configs/detection/ssdlite_mobilemamba_b1_512_toy.py
_base_ = './ssdlite_mobilemamba_b1_toy.py'

input_size = 256
train_pipeline, test_pipeline = _base_.train_pipeline, _base_.test_pipeline
train_pipeline[2].scale = test_pipeline[1].scale = (input_size, input_size)  # Resize
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
