"""Loading released weights: backbone init_cfg, the converter, and MMEngine checkpoints
(save / load_from / resume) under torch >= 2.6 weights-only loading."""
import logging
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.logging import MMLogger
from mmpretrain.models import ImageClassifier

from mmmobilemamba.models import MobileMamba
from mmmobilemamba.models.utils import official_to_mmpretrain

from conftest import REPO, load_fixture, rel_err

TINY = dict(embed_dims=[32, 48, 64], depths=[1, 1, 1], global_ratios=[0.8, 0.7, 0.6],
            local_ratios=[0.2, 0.2, 0.3], kernel_sizes=[7, 5, 3], ssm_ratio=2)


def fixture_arch(fix):
    c = fix['config']
    return dict(embed_dims=c['embed_dim'], depths=c['depth'], global_ratios=c['global_ratio'],
                local_ratios=c['local_ratio'], kernel_sizes=c['kernels'],
                ssm_ratio=c['ssm_ratio'])


@pytest.mark.parametrize('wrap', ['flat', 'net', 'state_dict', 'model', 'mm'])
def test_pretrained_init_cfg_takes_backbone_part(tmp_path, wrap):
    fix = load_fixture('parity_small.pt')
    sd = fix['state_dict']
    ckpt = {'flat': sd, 'net': {'net': sd, 'epoch': 3}, 'state_dict': {'state_dict': sd},
            'model': {'model': sd},
            'mm': {'state_dict': official_to_mmpretrain(sd)}}[wrap]
    path = str(tmp_path / 'ckpt.pth')
    torch.save(ckpt, path)
    model = MobileMamba(fixture_arch(fix), out_indices=(0, 1, 2, 3),
                        init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    model.eval()
    with torch.no_grad():
        for ours, ref in zip(model(fix['x']), fix['features_eval']):
            assert rel_err(ours, ref) <= 1e-4


def test_pretrained_prefers_ema_when_asked(tmp_path):
    fix = load_fixture('parity_small.pt')
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in fix['state_dict'].items()}
    path = str(tmp_path / 'ckpt.pth')
    torch.save({'net': fix['state_dict'], 'net_E': ema}, path)
    model = MobileMamba(fixture_arch(fix), init_cfg=dict(
        type='Pretrained', checkpoint=path, use_ema=True))
    model.init_weights()
    key = 'patch_embed.0.c.weight'
    assert torch.equal(model.state_dict()[key], ema[key])


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_missing_and_unexpected_keys_are_listed_loudly(tmp_path):
    fix = load_fixture('parity_small.pt')
    sd = dict(fix['state_dict'])
    sd.pop('blocks1.0.dw0.m.c.weight')
    sd['blocks9.extra.weight'] = torch.zeros(1)
    path = str(tmp_path / 'partial.pth')
    torch.save(sd, path)
    model = MobileMamba(fixture_arch(fix), init_cfg=dict(type='Pretrained', checkpoint=path))
    logger, handler = MMLogger.get_current_instance(), Collect()
    logger.addHandler(handler)
    try:
        model.init_weights()
    finally:
        logger.removeHandler(handler)
    text = '\n'.join(handler.messages)
    assert 'blocks1.0.dw0.m.c.weight' in text and 'blocks9.extra.weight' in text
    assert '1 missing keys' in text and '1 unexpected keys' in text
    strict = MobileMamba(fixture_arch(fix), init_cfg=dict(
        type='Pretrained', checkpoint=path, strict=True))
    with pytest.raises(KeyError, match='blocks1.0.dw0.m.c.weight'):
        strict.init_weights()


def test_wrong_variant_checkpoint_is_named(tmp_path):
    path = str(tmp_path / 'tiny.pth')
    torch.save(MobileMamba(TINY).state_dict(), path)
    fix = load_fixture('parity_small.pt')
    model = MobileMamba(fixture_arch(fix), init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(ValueError, match='tiny.pth does not match'):
        model.init_weights()


@pytest.mark.parametrize('name', ['parity_small.pt', 'parity_small_distill.pt'])
def test_converter_roundtrip(tmp_path, name):
    fix = load_fixture(name)
    src, dst = str(tmp_path / 'official.pth'), str(tmp_path / 'mm.pth')
    torch.save({'net': fix['state_dict']}, src)
    subprocess.run([sys.executable, osp.join(REPO, 'tools/model_converters/'
                                             'mobilemamba_official_to_mm.py'), src, dst],
                   check=True, capture_output=True)
    c = fix['config']
    model = ImageClassifier(
        backbone=dict(type='MobileMamba', arch=fixture_arch(fix)),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='BNLinearClsHead', num_classes=c['num_classes'],
                  in_channels=c['embed_dim'][-1], distillation=c['distillation']))
    model.load_state_dict(torch.load(dst)['state_dict'], strict=True)
    model.eval()
    with torch.no_grad():
        assert rel_err(model(fix['x'], mode='tensor'), fix['logits_eval']) <= 1e-4
