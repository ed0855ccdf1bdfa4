"""The training configs of every task turn on our default hooks: CheckFiniteLossHook,
RandomStateHook and CheckCompileHook."""
import os.path as osp

import pytest
from mmengine.config import Config


@pytest.mark.parametrize('rel', [
    'classification/mobilemamba_t2_8xb128_in1k.py',
    'classification/mobilemamba_t2_8xb128_in1k_toy.py',
    'classification/mobilemamba_t2_8xb128_in1k_kd-1000e_toy.py',
    'detection/retinanet_mobilemamba_b1_toy.py', 'detection/mask-rcnn_mobilemamba_b1_toy.py',
    'detection/ssdlite_mobilemamba_b1_512_toy.py', 'detection/ssdlite_mobilemamba_b1.py',
    'segmentation/fpn_mobilemamba_b4_toy.py',
    'segmentation/deeplabv3_mobilemamba_b4_toy.py', 'segmentation/pspnet_mobilemamba_b4_toy.py'])
def test_training_configs_check_the_loss(rel, repo_root):
    """Every task's training configs stop on a non-finite loss and resume exactly."""
    cfg = Config.fromfile(osp.join(repo_root, 'configs', rel))
    assert cfg.default_hooks.check_finite_loss.type == 'CheckFiniteLossHook'
    assert cfg.default_hooks.random_state.type == 'RandomStateHook'
    assert cfg.default_hooks.check_compile.type == 'CheckCompileHook'


@pytest.mark.parametrize('compile_cfg', [True, dict(backend='inductor')])
def test_mmengines_compile_is_refused_before_the_first_step(compile_cfg, toy_imagenet,
                                                            toy_cls_cfg, tmp_path):
    """``compile`` through MMEngine's own Runner (as mmpretrain's tools/train.py builds it):
    stopped before any iteration, naming the replacement, not a TorchDynamo error from
    inside the optimizer."""
    from mmengine.runner import Runner
    cfg = toy_cls_cfg(toy_imagenet, str(tmp_path))
    cfg.compile = compile_cfg
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=r'compile=.*--cuda-graph'):
        runner.train()
    assert runner.iter == 0
    cfg.compile = None  # and without it the same config trains
    cfg.train_cfg.max_epochs = 1
    Runner.from_cfg(cfg).train()


def test_tools_train_names_the_fix_for_compile(toy_imagenet, toy_cls_config, data_root_options,
                                               run_tool, tmp_path):
    out = run_tool('tools/train.py', toy_cls_config, '--work-dir', tmp_path, '--cfg-options',
                   'compile=True', 'train_dataloader.batch_size=2',
                   *data_root_options(toy_imagenet), check=False)
    assert out.returncode != 0
    assert 'Remove compile from the config' in out.output and '--cuda-graph' in out.output
