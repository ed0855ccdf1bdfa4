"""Loading released weights into the backbone through ``init_cfg``: every official and
OpenMMLab checkpoint wrapping, the EMA weights, and loud reports of mismatched keys."""
import logging

import pytest
import torch
from mmengine.logging import MMLogger

from mmmobilemamba.models import MobileMamba
from mmmobilemamba.utils import official_to_mmpretrain


@pytest.mark.parametrize('wrap', ['flat', 'net', 'state_dict', 'model', 'mm'])
def test_pretrained_init_cfg_takes_backbone_part(tmp_path, wrap, load_fixture, fixture_arch,
                                                rel_err):
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


def test_pretrained_prefers_ema_when_asked(tmp_path, load_fixture, fixture_arch):
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
    """Keeps the warnings logged while it is attached."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_missing_and_unexpected_keys_are_listed_loudly(tmp_path, load_fixture, fixture_arch):
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


def test_wrong_variant_checkpoint_is_named(tmp_path, load_fixture, fixture_arch, tiny_arch):
    path = str(tmp_path / 'tiny.pth')
    torch.save(MobileMamba(tiny_arch()).state_dict(), path)
    fix = load_fixture('parity_small.pt')
    model = MobileMamba(fixture_arch(fix), init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(ValueError, match='tiny.pth does not match'):
        model.init_weights()
