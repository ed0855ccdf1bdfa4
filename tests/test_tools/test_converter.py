"""tools/model_converters/mobilemamba_official_to_mm.py: an official checkpoint (plain or
with the distillation head) converts to one that loads strictly into our classifier and
computes what the official weights loaded by hand, or the official logits, give."""
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import load_checkpoint
from mmpretrain.models import ImageClassifier

from mmmobilemamba.utils import convert_checkpoint

CONVERTER = 'tools/model_converters/mobilemamba_official_to_mm.py'


pytestmark = pytest.mark.usefixtures('one_thread')


def random_official_state_dict(model: torch.nn.Module, official_keys: list) -> dict:
    """The classifier's weights, randomised (BN statistics included), under the official
    keys: the layout of the reference's S6 fixture, plus ``head_dist.*`` if distilled."""
    gen = torch.Generator().manual_seed(0)
    sd = {}
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            noise = torch.rand(value.shape, generator=gen) if 'running_var' in key else \
                torch.randn(value.shape, generator=gen)
            value = value + 0.1 * noise
        sd[key.split('.', 1)[1]] = value  # drop 'backbone.' / the head wrapper's 'head.'
    assert [k for k in sd if not k.startswith('head_dist.')] == official_keys
    return sd


@pytest.mark.parametrize('distillation', [False, True])
def test_converted_official_checkpoint_matches_loading_by_hand(tmp_path, distillation, repo_root,
                                                               data_file, build_model):
    cfg = Config.fromfile(osp.join(repo_root, 'configs', 'classification',
                                   'mobilemamba_s6_8xb128_in1k.py'))
    cfg.model.head.distillation = distillation
    with open(data_file('keys_S6.json')) as f:
        official_keys = [e['key'] for e in json.load(f)['keys']]
    official = random_official_state_dict(build_model(cfg), official_keys)
    src, dst = str(tmp_path / 'official.pth'), str(tmp_path / 'mm.pth')
    torch.save({'net': official, 'epoch': 300}, src)
    convert_checkpoint(src, dst)
    converted = build_model(cfg)
    load_checkpoint(converted, dst, map_location='cpu', strict=True)

    by_hand = build_model(cfg)
    heads = {'head': by_hand.head.head, 'head_dist': by_hand.head.head_dist}
    backbone = {k: v for k, v in official.items() if k.split('.')[0] not in heads}
    by_hand.backbone.load_state_dict(backbone, strict=True)
    for name, module in heads.items():
        if module is not None:
            module.load_state_dict({k[len(name) + 1:]: v for k, v in official.items()
                                    if k.startswith(name + '.')}, strict=True)

    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a = converted.eval()(x, mode='tensor')
        b = by_hand.eval()(x, mode='tensor')
    assert torch.isfinite(b).all() and b.std() > 0
    assert (a - b).abs().max() <= 1e-6


@pytest.mark.parametrize('name', ['parity_small.pt', 'parity_small_distill.pt'])
def test_converter_roundtrip(tmp_path, name, load_fixture, fixture_arch, run_tool, rel_err):
    """The command line on the reference fixtures: the converted file loads strictly into
    the mmpretrain classifier and gives the official logits."""
    fix = load_fixture(name)
    src, dst = str(tmp_path / 'official.pth'), str(tmp_path / 'mm.pth')
    torch.save({'net': fix['state_dict']}, src)
    run_tool(CONVERTER, src, dst)
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
