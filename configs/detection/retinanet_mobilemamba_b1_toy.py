# retinanet_mobilemamba_b1.py on the 3-class toy COCO, CPU-sized (see _base_/toy_coco.py):
#   python -m mmmobilemamba.datasets.toy_detection data/toy/coco
#   python tools/train.py configs/detection/retinanet_mobilemamba_b1_toy.py
_base_ = ['./_base_/models/retinanet_mobilemamba_b1_fpn.py', './_base_/toy_coco.py']
model = dict(backbone=dict(norm_eval=False), bbox_head=dict(num_classes=3))
