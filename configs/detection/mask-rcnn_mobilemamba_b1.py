# Mask R-CNN + MobileMamba-B1 on COCO, 1x schedule (12 epochs), 8 GPUs x 4 images.
# Paper: 38.0M params, 178G FLOPs, 40.6 box AP / 37.4 mask AP (Tab. 4 / A7). The ImageNet
# weights: --cfg-options model.backbone.init_cfg.checkpoint=/path/to/MobileMamba_B1.pth
_base_ = [
    './_base_/models/mask-rcnn_mobilemamba_b1_fpn.py', 'mmdet::_base_/datasets/coco_instance.py',
    './_base_/schedule_adamw_1x.py'
]
train_dataloader = dict(batch_size=4, num_workers=4)
