_base_ = [
    './mobilemamba_t2_8xb128_in1k.py', './_base_/mobilemamba_kd_tresnet-l_1000e.py'
]

# MobileMamba-T2†: 1000 epochs with soft distillation from TResNet-L (set its checkpoint
# with --cfg-options model.teacher.init_cfg.checkpoint=...).
model = _base_.kd_model
train_cfg = _base_.kd_train_cfg
