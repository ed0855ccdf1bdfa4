_base_ = './_base_/mobilemamba_8xb128_in1k.py'

# MobileMamba-S6: 15.0M parameters, 652M FLOPs at 224x224.
model = dict(backbone=dict(arch='s6', drop_path_rate=0.0))

# Trained and tested at 224x224 (short edge 256, centre crop 224): the base's pipelines.
