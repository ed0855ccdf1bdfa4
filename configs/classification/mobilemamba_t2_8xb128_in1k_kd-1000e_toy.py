_base_ = [
    './mobilemamba_t2_8xb128_in1k_toy.py', './_base_/mobilemamba_kd_tresnet-l_1000e.py'
]

# The T2† distillation recipe as a CPU smoke run on the toy dataset (see the plain toy config):
# the TResNet-L teacher is swapped for a tiny randomly initialised MobileMamba that expects
# [0, 1] inputs at 96x96, so the loss, the re-normalisation and the resize all run.
model = dict(
    _base_.kd_model,
    teacher=dict(
        type='ImageClassifier',
        backbone=dict(
            type='MobileMamba',
            arch=dict(embed_dims=[32, 48, 64], depths=[1, 1, 1], global_ratios=[0.8, 0.7, 0.6],
                      local_ratios=[0.2, 0.2, 0.3], kernel_sizes=[7, 5, 3], ssm_ratio=2)),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='BNLinearClsHead', num_classes=4, in_channels=64),
        data_preprocessor=dict(mean=[0., 0., 0.], std=[255., 255., 255.], to_rgb=True)),
    teacher_input_size=96)
