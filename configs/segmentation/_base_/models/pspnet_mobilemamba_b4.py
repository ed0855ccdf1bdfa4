# PSPNet (mmseg's pyramid pooling head) on MobileMamba-B4 for ADE20K's 150 classes at 512x512:
# the head decodes blocks3 (448 ch, stride 64), an FCN auxiliary head reads blocks2 (376 ch).
_base_ = ['mmseg::_base_/models/pspnet_r50-d8.py', './mobilemamba_b4.py']
model = dict(
    data_preprocessor=dict(size=(512, 512)), pretrained=None, backbone=_base_.pop('mobilemamba_b4'),
    decode_head=dict(in_channels=448, in_index=2, channels=256, num_classes=150),
    auxiliary_head=dict(in_channels=376, in_index=1, num_classes=150))
