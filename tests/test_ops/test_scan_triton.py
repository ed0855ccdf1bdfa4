"""The Triton scan against the float64 sequential reference: forward, every gradient, input
dtypes and layouts, fully written outputs, and torch.compile.

Needs CUDA; with ``TRITON_INTERPRET=1`` the small cases also run on the CPU through
Triton's interpreter (slow, for debugging kernels without a GPU).
"""
import math
import os

import pytest
import torch

from mmmobilemamba.ops import scan_triton as st
from mmmobilemamba.ops.scan_reference import scan_reference

CUDA = torch.cuda.is_available()
INTERPRET = os.environ.get('TRITON_INTERPRET') == '1'
pytestmark = pytest.mark.skipif(
    not st.HAS_TRITON or not (CUDA or INTERPRET),
    reason='the Triton scan needs a CUDA GPU (or TRITON_INTERPRET=1 for the slow interpreter)')
DEVICE = 'cuda' if CUDA else 'cpu'
needs_gpu = pytest.mark.skipif(not CUDA, reason='too slow for the Triton interpreter')
NAMES = ('y', 'u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias')


def make_inputs(bt, d, length, seed=0):
    """Float64 inputs in the ranges a trained SS2D sees (A < 0, moderate time steps)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    return dict(u=r(bt, d, length), delta=0.5 * r(bt, 2, d, length),
                A=-torch.exp(0.5 * r(2, d)), B=r(bt, 2, length), C=r(bt, 2, length),
                D=r(2, d), delta_bias=0.3 * r(2, d))


def run(fn, inputs, grad_y, dtype=None, device=DEVICE):
    """y and the gradients of ``(y * grad_y).sum()``; with ``dtype`` given, sequence tensors
    are cast to it and the (2, d) parameters to float32, as SS2D passes them."""
    args = {}
    for k, v in inputs.items():
        v = v.to(device)
        if dtype is not None:
            v = v.to(dtype if v.dim() > 2 else torch.float32)
        args[k] = v.detach().requires_grad_()
    y = fn(**args)
    (y * grad_y.to(device, y.dtype)).sum().backward()
    return [y] + [args[k].grad for k in NAMES[1:]]


def rel_errors(got, want):
    return {n: ((g.double().cpu() - w.double().cpu()).norm() / w.double().norm()).item()
            for n, g, w in zip(NAMES, got, want)}


def check(bt, d, length, dtype=torch.float32, tol=1e-4, seed=0):
    inputs = make_inputs(bt, d, length, seed)
    if dtype != torch.float32:   # the reference sees the same rounded inputs
        inputs = {k: v.to(dtype).double() if v.dim() > 2 else v for k, v in inputs.items()}
    grad_y = torch.randn(bt, d, length, dtype=torch.float64)
    want = run(scan_reference, inputs, grad_y, device='cuda' if length > 1000 else 'cpu')
    got = run(st.scan_triton, inputs, grad_y, dtype)
    assert got[0].dtype == torch.float32
    assert [g.dtype for g in got[1:4]] == [dtype, dtype, torch.float32]
    errs = rel_errors(got, want)
    assert all(e <= tol for e in errs.values()), errs


@pytest.mark.parametrize('bt,d,length', [(1, 5, 7), (2, 40, 196), (3, 12, 301)])
def test_float32_matches_reference(bt, d, length):
    check(bt, d, length)


@pytest.mark.parametrize('dtype,length', [(torch.bfloat16, 7), (torch.bfloat16, 301),
                                          (torch.float16, 301)])
def test_half_inputs(dtype, length):
    if not CUDA and dtype == torch.bfloat16:
        pytest.skip('the interpreter has no bfloat16')
    check(3, 24, length, dtype, tol=1e-2, seed=1)


@pytest.mark.parametrize('bt,d,length', [(2, 37, 11), (1, 21, 70)])
def test_channel_blocks(monkeypatch, bt, d, length):
    """Several channel blocks per program (backward), a masked channel tail, and chunks
    shorter than L, which the default sizes reach only on large inputs."""
    monkeypatch.setattr(st, 'MIN_PROGRAMS', 1)
    monkeypatch.setattr(st, 'MAX_BLOCK_L', 32)
    monkeypatch.setattr(st, 'FWD_TILE', 64)
    monkeypatch.setattr(st, 'BWD_TILE', 64)
    monkeypatch.setattr(st, 'BWD_CHANNELS', 16)
    check(bt, d, length, seed=3)


@needs_gpu
@pytest.mark.parametrize('bt,d,length', [(1, 8, 100 * 168), (3, 20, 25 * 42)])
def test_detection_sizes(bt, d, length):
    check(bt, d, length, seed=2)


def test_poisoned_outputs_fully_written(monkeypatch):
    def poisoned(like, shape=None, dtype=None):
        out = torch.empty_like(like, dtype=dtype) if shape is None else \
            like.new_empty(shape, dtype=dtype)
        return out.fill_(math.nan)

    monkeypatch.setattr(st, '_empty', poisoned)
    for bt, d, length in ((1, 5, 7), (3, 12, 301)):
        for dtype in (torch.float32, torch.float16):
            inputs = make_inputs(bt, d, length)
            got = run(st.scan_triton, inputs, torch.randn(bt, d, length), dtype)
            for name, t in zip(NAMES, got):
                assert torch.isfinite(t).all(), (name, bt, d, length, dtype)


def test_strided_layouts_read_as_given():
    """Channel-last u, a permuted delta and B/C sliced from one projection give the same
    result as contiguous inputs (no copies are made)."""
    bt, d, length = 2, 24, 45
    x = make_inputs(bt, d, length)
    x = {k: v.float().to(DEVICE) for k, v in x.items()}
    u_cl = x['u'].transpose(1, 2).contiguous().transpose(1, 2)
    delta_p = x['delta'].permute(1, 2, 0, 3).contiguous().permute(2, 0, 1, 3)
    dbl = torch.stack([x['B'], x['C'], x['B']], dim=2)          # (bt, 2, 3, L)
    y_ref = st.scan_triton(**x)
    y = st.scan_triton(u_cl, delta_p, x['A'], dbl[:, :, 0], dbl[:, :, 1], x['D'],
                       x['delta_bias'])
    assert y.stride() == u_cl.stride()
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)


@needs_gpu
def test_opcheck():
    x = make_inputs(2, 16, 33)
    args = [v.float().cuda().requires_grad_() for v in x.values()]
    torch.library.opcheck(torch.ops.mmmobilemamba.scan_fwd.default, args)


@needs_gpu
def test_compile_fullgraph():
    bt, d, length = 2, 32, 49
    x = {k: v.float().cuda() for k, v in make_inputs(bt, d, length).items()}
    grad_y = torch.randn(bt, d, length, dtype=torch.float64)

    def fn(**kw):
        return torch.nn.functional.gelu(st.scan_triton(**kw)) * 2

    want = run(fn, x, grad_y)
    got = run(torch.compile(fn, fullgraph=True), x, grad_y)
    errs = rel_errors(got, want)
    assert all(e <= 1e-5 for e in errs.values()), errs


def test_available():
    assert not st.triton_available(torch.zeros(1, dtype=torch.float64, device=DEVICE))
    assert st.triton_available(torch.zeros(1, device=DEVICE))
