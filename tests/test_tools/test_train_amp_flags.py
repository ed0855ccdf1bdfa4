"""tools/train.py --amp / --amp-dtype: which optimizer wrapper and autocast dtype the run gets,
and the errors for contradicting or orphaned flags (the GPU runs: docs/get_started.md, "AMP")."""
import argparse
import os.path as osp

import pytest

CONFIG = 'configs/detection/retinanet_mobilemamba_b1_toy.py'


def amp_cfg(import_tool, repo_root, *flags, cfg_options=None):
    train = import_tool('tools/train.py')
    args = argparse.Namespace(config=osp.join(repo_root, CONFIG), work_dir=None, resume=None,
                              amp='--amp' in flags, amp_dtype=None, auto_scale_lr=False,
                              cfg_options=cfg_options, launcher='none', local_rank=0)
    if '--amp-dtype' in flags:
        args.amp_dtype = flags[flags.index('--amp-dtype') + 1]
    return train.build_train_cfg(args).optim_wrapper


def test_amp_defaults_to_bfloat16_with_dynamic_loss_scaling(import_tool, repo_root):
    wrapper = amp_cfg(import_tool, repo_root, '--amp')
    assert (wrapper.type, wrapper.dtype, wrapper.loss_scale) == (
        'AmpOptimWrapper', 'bfloat16', 'dynamic')
    assert wrapper.optimizer.type == 'AdamW' and wrapper.clip_grad.max_norm == 0.1


def test_amp_dtype_float16_and_the_configs_own_dtype(import_tool, repo_root):
    assert amp_cfg(import_tool, repo_root, '--amp', '--amp-dtype', 'float16').dtype == 'float16'
    own = amp_cfg(import_tool, repo_root, '--amp',
                  cfg_options={'optim_wrapper.dtype': 'float16'})
    assert own.dtype == 'float16'
    assert amp_cfg(import_tool, repo_root).type == 'OptimWrapper'  # no --amp: fp32


def test_contradicting_or_orphaned_amp_flags_fail(import_tool, repo_root):
    with pytest.raises(ValueError, match='contradicts the config'):
        amp_cfg(import_tool, repo_root, '--amp', '--amp-dtype', 'bfloat16',
                cfg_options={'optim_wrapper.dtype': 'float16'})
    with pytest.raises(ValueError, match='--amp-dtype needs --amp'):
        amp_cfg(import_tool, repo_root, '--amp-dtype', 'float16')
