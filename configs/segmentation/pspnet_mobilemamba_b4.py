# PSPNet on MobileMamba-B4, ADE20K 512x512, 80k iters, 8 images/GPU (paper Tab. 6/A8:
# 36.9 mIoU, 20.5M params, 4.5G FLOPs). The ImageNet weights of the backbone:
#   --cfg-options model.backbone.init_cfg.checkpoint=/path/to/MobileMamba_B4.pth
_base_ = ['./_base_/models/pspnet_mobilemamba_b4.py', './_base_/ade20k_adamw_80k.py']
