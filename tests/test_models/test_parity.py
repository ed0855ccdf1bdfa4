"""Parity with the official implementation on the reference fixtures of tests/data (eval
logits and features, fused logits, train-mode loss, gradients and BN statistics), for every
CPU scan backend and for the export formulation. The fixtures merge the two scan directions
per sample, as the official GPU kernels do (tests/data/README.md). Tolerances: the fixtures'
own float32-vs-float64 gap is ~1e-5 (eval) and ~1e-4 (grads), so 1e-4 / 1e-3 relative."""
import contextlib
import copy

import pytest
import torch

from mmmobilemamba.deployment import export_formulation
from mmmobilemamba.models import MobileMamba
from mmmobilemamba.models.utils import fuse_modules
from mmmobilemamba.utils import official_key_to_mmpretrain

FIXTURES = ['parity_small.pt', 'parity_small_distill.pt']
# CPU scan backends, then the export formulation (static, dynamic H, W) around 'chunked'
BACKENDS = ['torch', 'chunked', 'export', 'export-dynamic']


def scan(variant: str) -> str:
    return 'chunked' if variant.startswith('export') else variant


def formulation(model, variant: str):
    """The export formulation for the 'export*' variants, else nothing."""
    if variant.startswith('export'):
        return export_formulation(model, dynamic_hw=variant == 'export-dynamic')
    return contextlib.nullcontext()


def logits(model, x):
    return model(x, mode='tensor')


@pytest.fixture(scope='module', params=FIXTURES)
def fix(request, load_fixture):
    return load_fixture(request.param)


@pytest.mark.parametrize('backend', BACKENDS)
def test_eval_logits_and_features(fix, backend, build_fixture_classifier, rel_err):
    model = build_fixture_classifier(fix, scan(backend)).eval()
    with formulation(model, backend), torch.no_grad():
        for suffix, x in (('', fix['x']), ('_odd', fix['x_odd'])):
            feats = model.backbone(x)
            for i, (ours, ref) in enumerate(zip(feats, fix['features_eval' + suffix])):
                assert ours.shape == ref.shape
                assert rel_err(ours, ref) <= 1e-4, f'stage {i}{suffix}'
            assert rel_err(logits(model, x), fix['logits_eval' + suffix]) <= 1e-4


def test_fused_logits(fix, build_fixture_classifier, rel_err):
    model = build_fixture_classifier(fix, 'chunked').eval()
    fuse_modules(model)
    assert not any('bn' in k.split('.')[-2] for k in model.state_dict()
                   if k.startswith('backbone.patch_embed'))
    with torch.no_grad():
        assert rel_err(logits(model, fix['x']), fix['logits_fused']) <= 1e-4
        assert rel_err(logits(model, fix['x_odd']), fix['logits_fused_odd']) <= 1e-4


@pytest.mark.parametrize('backend', BACKENDS)
def test_train_loss_grads_and_bn_stats(fix, backend, build_fixture_classifier, rel_err):
    model = build_fixture_classifier(fix, scan(backend)).train()
    x = fix['x'].clone().requires_grad_(True)
    with formulation(model, backend):
        out = logits(model, x)
    outs = out if isinstance(out, tuple) else (out, )
    loss = sum(o.square().mean() for o in outs)
    loss.backward()
    assert rel_err(loss, fix['loss_train']) <= 1e-3
    params = dict(model.named_parameters())
    ours, refs = [], []
    for key, ref in fix['grads_all'].items():
        grad = params[official_key_to_mmpretrain(key)].grad
        assert grad is not None, key
        ours.append(grad.flatten())
        refs.append(ref.flatten())
    assert rel_err(torch.cat(ours), torch.cat(refs)) <= 1e-3
    for key, ref in fix['grads'].items():
        grad = x.grad if key == 'x' else params[official_key_to_mmpretrain(key)].grad
        assert rel_err(grad, ref) <= 1e-3, key
    buffers = dict(model.named_buffers())
    for key, ref in fix['buffers_after_train'].items():
        got = buffers[official_key_to_mmpretrain(key)]
        if ref.dtype.is_floating_point:
            assert rel_err(got, ref) <= 1e-4, key
        else:
            assert torch.equal(got, ref), key


def test_official_layout_loads_strictly_into_backbone(fix, fixture_arch):
    backbone = MobileMamba(arch=fixture_arch(fix))
    sd = {k: v for k, v in fix['state_dict'].items() if not k.startswith(('head.', 'head_dist.'))}
    assert list(backbone.state_dict()) == list(sd)
    backbone.load_state_dict(copy.deepcopy(sd), strict=True)
