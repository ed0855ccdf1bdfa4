# RetinaNet + MobileMamba-B1 on COCO, 1x schedule (12 epochs), 8 GPUs x 4 images.
# Paper: 27.1M params, 151G FLOPs, 39.6 box AP (Tab. 4 / A6). The ImageNet weights:
#   --cfg-options model.backbone.init_cfg.checkpoint=/path/to/MobileMamba_B1.pth
_base_ = [
    './_base_/models/retinanet_mobilemamba_b1_fpn.py', 'mmdet::_base_/datasets/coco_detection.py',
    './_base_/schedule_adamw_1x.py'
]
train_dataloader = dict(batch_size=4, num_workers=4)
