"""The training configs of every task turn on our two default hooks: CheckFiniteLossHook
and RandomStateHook."""
import os.path as osp

import pytest
from mmengine.config import Config


@pytest.mark.parametrize('rel', [
    'classification/mobilemamba_t2_8xb128_in1k.py',
    'classification/mobilemamba_t2_8xb128_in1k_toy.py',
    'classification/mobilemamba_t2_8xb128_in1k_kd-1000e_toy.py',
    'detection/retinanet_mobilemamba_b1_toy.py', 'detection/mask-rcnn_mobilemamba_b1_toy.py',
    'detection/ssdlite_mobilemamba_b1_512_toy.py', 'segmentation/fpn_mobilemamba_b4_toy.py',
    'segmentation/deeplabv3_mobilemamba_b4_toy.py', 'segmentation/pspnet_mobilemamba_b4_toy.py'])
def test_training_configs_check_the_loss(rel, repo_root):
    """Every task's training configs stop on a non-finite loss and resume exactly."""
    cfg = Config.fromfile(osp.join(repo_root, 'configs', rel))
    assert cfg.default_hooks.check_finite_loss.type == 'CheckFiniteLossHook'
    assert cfg.default_hooks.random_state.type == 'RandomStateHook'
