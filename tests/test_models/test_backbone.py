"""MobileMamba backbone behaviour: sizes, layouts, stage options, fusion, input checks."""
import json

import pytest
import torch
from mmpretrain.models import ImageClassifier
from torch.nn.modules.batchnorm import _BatchNorm

from mmmobilemamba.models import MobileMamba
from mmmobilemamba.models.layers import DropPath
from mmmobilemamba.models.utils import fuse_modules
from mmmobilemamba.utils import official_key_to_mmpretrain

ARCHS = sorted(MobileMamba.arch_zoo)


def classifier(arch: str, **head) -> ImageClassifier:
    backbone = MobileMamba(arch)
    return ImageClassifier(
        backbone=dict(type='MobileMamba', arch=arch),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='BNLinearClsHead', num_classes=1000,
                  in_channels=backbone.embed_dims[-1], **head))


@pytest.mark.parametrize('arch', ARCHS)
def test_parameter_counts(arch, classifier_params, n_params):
    assert n_params(classifier(arch)) == classifier_params[arch]


def test_fused_s6_parameter_count(n_params):
    assert n_params(fuse_modules(classifier('s6').eval())) == 15_000_456


@pytest.mark.parametrize('variant', ['S6', 'B1'])
def test_state_dict_layout_matches_official(variant, data_file):
    with open(data_file(f'keys_{variant}.json')) as f:
        ref = json.load(f)['keys']
    model = classifier(variant.lower())
    sd = model.state_dict()
    params = dict(model.named_parameters())
    assert list(sd) == [official_key_to_mmpretrain(e['key']) for e in ref]
    for e in ref:
        key = official_key_to_mmpretrain(e['key'])
        assert list(sd[key].shape) == e['shape'], key
        assert str(sd[key].dtype) == 'torch.' + e['dtype'], key
        kind = ('buffer' if key not in params else
                'parameter' if params[key].requires_grad else 'parameter_requires_grad_false')
        assert kind == e['kind'], key


def test_fused_key_layout(tiny_arch):
    model = MobileMamba({**tiny_arch(), 'embed_dims': [64, 48, 64]}).eval()  # all three MRFFI parts
    model.switch_to_deploy()
    keys = set(model.state_dict())
    assert 'patch_embed.0.weight' in keys and 'patch_embed.0.bias' in keys
    assert 'blocks1.0.dw0.m.weight' in keys
    attn = 'blocks1.0.mixer.m.attn.'
    assert {attn + 'local_op.0.weight', attn + 'local_op.0.bias', attn + 'local_op.2.weight',
            attn + 'local_op.2.bias', attn + 'proj.1.weight',
            attn + 'global_op.global_atten.in_proj.weight',
            attn + 'global_op.global_atten.out_norm.weight', attn + 'global_op.wt_filter',
            attn + 'global_op.base_scale.weight', 'blocks2.1.se.fc1.weight'} <= keys
    assert not [k for k in keys if '.bn.' in k or '.c.' in k or 'bn1' in k or 'bn2' in k]


@pytest.mark.parametrize('arch', ARCHS)
def test_switch_to_deploy_keeps_outputs(arch, rel_err):
    torch.manual_seed(0)
    model = MobileMamba(arch, out_indices=(0, 1, 2, 3)).eval()
    for m in model.modules():  # non-trivial BN statistics and affine terms
        if isinstance(m, _BatchNorm):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        before = model(x)
        model.switch_to_deploy()
        after = model(x)
    assert not any(isinstance(m, _BatchNorm) for m in model.modules())
    for a, b in zip(after, before):
        assert rel_err(a, b) <= 1e-5


def test_out_indices_and_strides(tiny_arch):
    model = MobileMamba(tiny_arch(), out_indices=(0, 1, 2, 3)).eval()
    outs = model(torch.randn(1, 3, 512, 512))
    assert [tuple(o.shape[1:]) for o in outs] == [(32, 32, 32), (32, 32, 32), (48, 16, 16),
                                                 (64, 8, 8)]
    assert model.out_channels == (32, 32, 48, 64)
    assert len(MobileMamba(tiny_arch(), out_indices=-1).eval()(torch.randn(1, 3, 64, 64))) == 1
    assert MobileMamba(tiny_arch(), out_indices=(1, 3)).out_indices == (1, 3)


@pytest.mark.parametrize('hw', [(32, 32), (33, 47), (144, 208), (61, 35)])
def test_any_input_of_at_least_32_px(hw, tiny_arch):
    outs = MobileMamba(tiny_arch(), out_indices=(1, 2, 3)).eval()(torch.randn(2, 3, *hw))
    h, w = hw
    for o, stride in zip(outs, (16, 32, 64)):
        assert o.shape[-2:] == ((h - 1) // stride + 1, (w - 1) // stride + 1)


@pytest.mark.parametrize('shape,msg', [((1, 3, 31, 64), 'at least 32'),
                                       ((1, 3, 64, 16), 'at least 32'),
                                       ((1, 1, 64, 64), r'\(N, 3, H, W\)'),
                                       ((3, 64, 64), r'\(N, 3, H, W\)')])
def test_bad_input_raises(shape, msg, tiny_arch):
    with pytest.raises(ValueError, match=msg):
        MobileMamba(tiny_arch())(torch.randn(*shape))


@pytest.mark.parametrize('kwargs,msg', [(dict(arch='s7'), "Unknown MobileMamba arch 's7'"),
                                        (dict(arch=dict(embed_dims=[8, 8, 8])), 'missing keys'),
                                        (dict(out_indices=(4, )), 'out_indices'),
                                        (dict(out_indices=(-5, )), 'out_indices'),
                                        (dict(frozen_stages=4), 'frozen_stages')])
def test_bad_arguments_raise(kwargs, msg, tiny_arch):
    with pytest.raises(ValueError, match=msg):
        MobileMamba(**{'arch': tiny_arch(), **kwargs})


@pytest.mark.parametrize('frozen', [-1, 0, 1, 3])
def test_frozen_stages_stay_frozen(frozen, tiny_arch):
    model = MobileMamba(tiny_arch(), frozen_stages=frozen)
    model.train()
    for i, stage in enumerate(model.stages):
        frozen_here = i <= frozen
        for name, p in stage.named_parameters():
            expect = not frozen_here and not name.endswith(('wt_filter', 'iwt_filter'))
            assert p.requires_grad == expect, (i, name)
        for m in stage.modules():
            if isinstance(m, _BatchNorm):
                assert m.training != frozen_here, (i, m)


def test_norm_eval_keeps_bn_in_eval_mode(tiny_arch):
    model = MobileMamba(tiny_arch(), norm_eval=True).train()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert bns and all(not m.training for m in bns)
    assert all(p.requires_grad for n, p in model.named_parameters() if 'wt_filter' not in n)
    assert all(m.training for m in MobileMamba(tiny_arch()).train().modules()
               if isinstance(m, _BatchNorm))


def test_drop_path_rates_and_behaviour():
    model = MobileMamba('b1')
    rates = [m.drop_path.drop_prob if isinstance(m.drop_path, DropPath) else 0.0
             for s in (model.blocks1, model.blocks2, model.blocks3) for m in s
             if hasattr(m, 'drop_path')]
    assert rates == pytest.approx(torch.linspace(0, 0.03, 7).tolist())
    assert MobileMamba('s6').arch_settings['drop_path_rate'] == 0.0
    dp = DropPath(0.5).train()
    x = torch.ones(4000, 1, 2, 2)
    y = dp(x)
    kept = (y[:, 0, 0, 0] != 0).float().mean().item()
    assert 0.45 < kept < 0.55 and torch.all((y == 0) | (y == 2))
    assert torch.equal(dp.eval()(x), x)


def test_fresh_block_returns_twice_its_input(tiny_arch):
    block = MobileMamba(tiny_arch()).blocks1[0].eval()
    x = torch.randn(2, 32, 8, 8)
    assert torch.allclose(block(x), 2 * x, atol=1e-6)


def test_fused_s6_traces_as_one_graph_on_cpu():
    """torch.compile sees the fused S6 (CPU 'auto' scan, i.e. 'chunked') as one graph: no
    graph breaks, so fullgraph=True compiles it (the GPU side: test_ops/test_scan_triton.py)."""
    model = MobileMamba('s6').eval()
    model.switch_to_deploy()
    explanation = torch._dynamo.explain(model)(torch.randn(1, 3, 64, 64))
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.parametrize('hw', [(14, 14), (6, 10)])
def test_haar_mix_equals_the_grouped_convolutions(hw):
    """The wavelet transforms as 4x4 mixes (PyTorch) compute what the grouped conv /
    transposed conv with the same filters (ONNX export, ``export_formulation``) do; the pair
    inverts."""
    import torch.nn.functional as F

    from mmmobilemamba.models.layers.wavelet_mamba import (haar_analysis, haar_filters,
                                                           haar_synthesis)
    c = 5
    filters = haar_filters(c)
    x = torch.randn(2, c, *hw, dtype=torch.float64)
    bands = F.conv2d(x, filters.double(), stride=2, groups=c)
    torch.testing.assert_close(haar_analysis(x, filters.double()), bands)
    back = F.conv_transpose2d(bands, filters.double(), stride=2, groups=c)
    torch.testing.assert_close(haar_synthesis(bands, filters.double()), back)
    torch.testing.assert_close(back, x)


@pytest.mark.parametrize('backend', ['mamba_ssm', 'triton'])
def test_unavailable_scan_backend_in_the_model(backend, tiny_arch):
    """A backbone configured with a GPU-only scan backend fails on CPU input, naming the
    backend and the alternative, instead of silently falling back."""
    model = MobileMamba(tiny_arch(), scan_backend=backend).eval()
    with pytest.raises(RuntimeError, match=rf"Scan backend '{backend}' .*cannot run here: "
                       r".*backend='chunked'"):
        model(torch.randn(1, 3, 32, 32))
