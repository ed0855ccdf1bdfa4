# mask-rcnn_mobilemamba_b1.py on the 3-class toy COCO, CPU-sized (see _base_/toy_coco.py):
#   python -m mmmobilemamba.datasets.toy_detection data/toy/coco
#   python tools/train.py configs/detection/mask-rcnn_mobilemamba_b1_toy.py
_base_ = ['./_base_/models/mask-rcnn_mobilemamba_b1_fpn.py', './_base_/toy_coco.py']

model = dict(
    backbone=dict(norm_eval=False),
    roi_head=dict(bbox_head=dict(num_classes=3), mask_head=dict(num_classes=3)),
    # a few objects per image: far fewer proposals/RoIs than COCO's keep CPU steps short
    train_cfg=dict(rpn_proposal=dict(nms_pre=500, max_per_img=200),
                   rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=20)))

# instances: load the masks too, and score them next to the boxes
train_pipeline, test_pipeline = _base_.train_pipeline, _base_.test_pipeline
train_pipeline[1].with_mask = test_pipeline[2].with_mask = True  # LoadAnnotations
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_evaluator = test_evaluator = dict(metric=['bbox', 'segm'])
