# A research team's own config, derived from ours (walked through in
# docs/config_inheritance.md): RetinaNet + MobileMamba-B1 on a 3-class COCO-format dataset,
# a 6-epoch schedule, the stem and blocks1 frozen, starting from the ImageNet weights.
#
#   python tools/train.py docs/examples/retinanet_mobilemamba_b1_custom.py
#   python tools/test.py docs/examples/retinanet_mobilemamba_b1_custom.py \
#       work_dirs/retinanet_mobilemamba_b1_custom/epoch_6.pth
#
# Everything not set here (model, neck, anchors, losses, AdamW, pipelines, hooks) is
# inherited from configs/detection/retinanet_mobilemamba_b1.py, which in turn inherits
# mmdet's retinanet_r50_fpn_1x_coco.py. Nested dicts merge key by key; lists are replaced.
_base_ = '../../configs/detection/retinanet_mobilemamba_b1.py'

# --- data: a COCO-format dataset (one json per split, category names as below) ---------
data_root = 'data/traffic/'
metainfo = dict(
    classes=('car', 'truck', 'bus'),
    palette=[(220, 20, 60), (0, 0, 142), (0, 60, 100)])

train_dataloader = dict(
    batch_size=8,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/train.json',
        data_prefix=dict(img='images/train/')))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/val.json',
        data_prefix=dict(img='images/val/')))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/val.json')
test_evaluator = val_evaluator

# --- model: 3 classes; freeze patch_embed + blocks1 (stages 0..1); ImageNet weights ----
# Backbone weights always go to model.backbone.init_cfg.checkpoint (the base sets
# dict(type='Pretrained', checkpoint=None)); --cfg-options can set the same key.
model = dict(
    backbone=dict(
        frozen_stages=1,
        init_cfg=dict(checkpoint='checkpoints/mobilemamba_b1.pth')),
    bbox_head=dict(num_classes=3))

# --- schedule: 6 epochs; the base's per-epoch cosine has to move with it --------------
max_epochs = 6
train_cfg = dict(max_epochs=max_epochs, val_interval=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=False, begin=0, end=500),
    dict(type='CosineAnnealingLR', begin=max_epochs // 2, end=max_epochs,
         T_max=max_epochs // 2, by_epoch=True, eta_min=0)
]
# lr 2e-4 is the base's for 32 images per step; we train 1 GPU x 8 images, so scale it.
optim_wrapper = dict(optimizer=dict(lr=2e-4 * 8 / 32))
default_hooks = dict(checkpoint=dict(interval=2, max_keep_ckpts=2, save_best='auto'))
