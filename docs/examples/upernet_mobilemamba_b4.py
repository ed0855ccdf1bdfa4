# UPerNet + MobileMamba-B4 on ADE20K 512x512, 80k iterations, composed as our DeepLabv3
# config is: mmseg's UPerNet model, our B4 backbone fragment, our ADE20K AdamW 80k.
# UPerHead reads four levels (a pyramid pooling module on the last, FPN fusion of all); the
# backbone gives four with out_indices=(0, 1, 2, 3): patch_embed (the stem, 200 ch) and
# blocks1..3 (200/376/448 ch) at strides 16, 16, 32, 64, so the head decodes at stride 16
# like our Semantic FPN. Why no neck adds strides 4 and 8: docs/config_inheritance.md,
# "Finer strides: Faster R-CNN, FCOS, UPerNet".
#
#   python tools/train.py docs/examples/upernet_mobilemamba_b4.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=/path/to/MobileMamba_B4.pth
_base_ = [
    'mmseg::_base_/models/upernet_r50.py',
    '../../configs/segmentation/_base_/models/mobilemamba_b4.py',  # + custom_imports
    '../../configs/segmentation/_base_/ade20k_adamw_80k.py'
]
model = dict(
    data_preprocessor=dict(size=(512, 512)),
    pretrained=None,
    # all four stages, which the base's in_index=[0, 1, 2, 3] reads
    backbone=dict(_base_.pop('mobilemamba_b4'), out_indices=(0, 1, 2, 3)),
    # 256 channels like our other decoders (the base's 512 is sized for ResNet-50)
    decode_head=dict(in_channels=[200, 200, 376, 448], channels=256, num_classes=150),
    auxiliary_head=dict(in_channels=376, num_classes=150))  # base in_index=2: blocks2
