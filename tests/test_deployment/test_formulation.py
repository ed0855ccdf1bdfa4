"""export_formulation, the one switch between the formulation a model trains in and the one
an ONNX export traces: other ops (counted here), the same outputs, undone afterwards."""
import collections
import functools

import pytest
import torch
from torch import nn

from mmmobilemamba.deployment import export_formulation
from mmmobilemamba.models import MobileMamba
from mmmobilemamba.models.layers import ss2d, wavelet_mamba
from mmmobilemamba.models.layers.ss2d import SS2D


@pytest.fixture
def calls(monkeypatch) -> collections.Counter:
    """How often each formulation's distinguishing op runs: the default formulation's
    ``selective_scan`` and Haar 4x4 mix, the export's sequence-major SS2D and doubling scan."""
    counter = collections.Counter()

    def counted(name, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            counter[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(ss2d, 'selective_scan', counted('scan', ss2d.selective_scan))
    monkeypatch.setattr(ss2d, 'scan_doubling', counted('doubling', ss2d.scan_doubling))
    monkeypatch.setattr(SS2D, 'forward_seq_major', counted('seq_major', SS2D.forward_seq_major))
    monkeypatch.setattr(wavelet_mamba, 'haar_analysis',
                        counted('haar_mix', wavelet_mamba.haar_analysis))
    return counter


def randomized_t2() -> MobileMamba:
    """T2 with BatchNorms and SSM parameters drawn away from their initial values, so that
    every branch (scan, wavelet, local) reaches the output."""
    model = MobileMamba('t2', out_indices=(1, 2, 3), scan_backend='chunked')
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0, 0.2, generator=g)
            elif isinstance(m, SS2D):
                m.A_logs.normal_(0, 0.5, generator=g)
                m.dt_projs_bias.normal_(-1, 0.5, generator=g)
    return model.eval()


@pytest.mark.parametrize('dynamic_hw', [False, True])
def test_other_ops_same_outputs_then_restored(dynamic_hw, calls, rel_err):
    model = randomized_t2()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        want = model(x)
    blocks = sum(model.arch_settings['depths'])  # one WTE-Mamba (SS2D) per block
    assert calls['scan'] == blocks and calls['haar_mix'] == blocks
    calls.clear()
    with export_formulation(model, dynamic_hw=dynamic_hw) as same, torch.no_grad():
        got = model(x)
    assert same is model
    assert (calls['scan'], calls['haar_mix']) == (0, 0)  # Haar transforms as convolutions
    assert (calls['doubling'], calls['seq_major']) == ((blocks, 0) if dynamic_hw else (0, blocks))
    for stage, (g, w) in enumerate(zip(got, want)):
        assert rel_err(g, w) <= 1e-5, stage
    calls.clear()
    with torch.no_grad():
        again = model(x)
    assert (calls['scan'], calls['haar_mix'], calls['doubling'], calls['seq_major']) == (
        blocks, blocks, 0, 0)
    assert all(torch.equal(a, w) for a, w in zip(again, want))


def test_restored_after_an_error(calls):
    model = MobileMamba('t2', scan_backend='chunked').eval()
    with pytest.raises(RuntimeError, match='inside'):
        with export_formulation(model):
            raise RuntimeError('inside')
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert calls['scan'] == sum(model.arch_settings['depths']) and calls['seq_major'] == 0
