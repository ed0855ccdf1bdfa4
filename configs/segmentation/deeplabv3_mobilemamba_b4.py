# DeepLabv3 on MobileMamba-B4, ADE20K 512x512, 80k iters, 8 images/GPU (paper Tab. 6/A8:
# 36.6 mIoU, 23.0M params, 4.7G FLOPs). The ImageNet weights of the backbone:
#   --cfg-options model.backbone.init_cfg.checkpoint=/path/to/MobileMamba_B4.pth
_base_ = ['./_base_/models/deeplabv3_mobilemamba_b4.py', './_base_/ade20k_adamw_80k.py']
