# The paper's † recipe: 1000 epochs plus DeiT-style soft distillation from TResNet-L.
# A variant's KD config inherits its plain config and this file, then merges
# `model = _base_.kd_model` and `train_cfg = _base_.kd_train_cfg`.
#
# loss = label-smoothed soft-target CE (loss_cls)
#        + 5.0 * tau^2 * KL(teacher || student) at tau = 1 (loss_kd).
# The student keeps its single head (the released layout and parameter count); with
# model.head.distillation=True the class head learns from the labels and the distillation
# head from the teacher, as in DeiT.
#
# The teacher is timm's TResNet-L v2 (83.9% top-1) through mmpretrain's TimmClassifier: only
# training builds it, so timm is needed for training alone. Its checkpoint must hold timm's
# `tresnet_v2_l` state_dict, e.g. saved from
# timm.create_model('tresnet_v2_l.miil_in21k_ft_in1k', pretrained=True) (see the README).
# It sees the batch (after mixup/cutmix) in its own normalisation, [0, 1] RGB, resized to 224.
kd_model = dict(
    type='KDImageClassifier',
    teacher=dict(
        type='TimmClassifier',
        model_name='tresnet_v2_l',
        pretrained=False,
        num_classes=1000,
        data_preprocessor=dict(mean=[0., 0., 0.], std=[255., 255., 255.], to_rgb=True),
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/tresnet_v2_l_in1k.pth')),
    kd_weight=5.0,
    tau=1.0,
    teacher_input_size=224)
kd_train_cfg = dict(max_epochs=1000)
