_base_ = './mobilemamba_t2_8xb128_in1k.py'

# MobileMamba-T4: 14.2M parameters, 413M FLOPs at 192x192, T2's resolution and recipe.
model = dict(backbone=dict(arch='t4'), head=dict(in_channels=448))
