"""The selective scan backends agree with the sequential float64 reference, and the
backend choice is explicit: unknown or unavailable backends raise, never fall back."""
import importlib
import io
import sys
import types
import warnings
import zlib

import pytest
import torch
import torch.nn.functional as F

from mmmobilemamba.ops import scan_chunked, scan_reference, selective_scan
from mmmobilemamba.ops.scan_chunked import linear_scan, linear_scan_doubling, scan_doubling
from mmmobilemamba.ops.scan_mamba_ssm import _import_error, scan_mamba_ssm

# The module, not the function of the same name that the package exports.
sel = importlib.import_module('mmmobilemamba.ops.selective_scan')

NAMES = ('u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias')


@pytest.fixture
def gen(request) -> torch.Generator:
    """A generator seeded per test: fresh inputs for each test, reproducible on rerun."""
    return torch.Generator().manual_seed(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture
def registry():
    """Restore the backend registry and the 'auto' cache after a test changes them."""
    saved = dict(sel.BACKENDS), dict(sel._UNAVAILABLE)
    yield
    for live, old in zip((sel.BACKENDS, sel._UNAVAILABLE), saved):
        live.clear()
        live.update(old)
    sel._auto_cache.clear()


def make_inputs(gen, batch, dim, length, dtype=torch.float64, delta_max=None, log_a_max=None):
    """Realistic value ranges; ``delta_max``/``log_a_max`` widen delta and -A to extremes."""
    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    def uniform(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(*shape, generator=gen, dtype=torch.float64)

    delta = randn(batch, 2, dim, length) - 1
    log_a = 0.5 * randn(2, dim)
    if delta_max is not None:
        delta = uniform(-5, delta_max, batch, 2, dim, length)
    if log_a_max is not None:
        log_a = uniform(-1, log_a_max, 2, dim)
        log_a[:, 0] = log_a_max
    inputs = [randn(batch, dim, length), delta, -log_a.exp(), randn(batch, 2, length),
              randn(batch, 2, length), 1 + 0.2 * randn(2, dim), 0.5 * randn(2, dim)]
    return [t.to(dtype) for t in inputs]


def value_and_grads(fn, inputs, cotangent):
    """Output and the gradients of <output, cotangent> w.r.t. every input, as float64."""
    inputs = [t.detach().requires_grad_() for t in inputs]
    y = fn(*inputs)
    grads = torch.autograd.grad((y * cotangent.to(y.dtype)).sum(), inputs)
    return [y.double()] + [g.double() for g in grads]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def assert_close(got, want, tol, what=''):
    for name, a, b in zip(('y',) + NAMES, got, want):
        assert torch.isfinite(a).all(), f'{what} {name} not finite'
        assert rel_err(a, b) <= tol, f'{what} {name}: relative error {rel_err(a, b):.2e} > {tol}'


@pytest.mark.parametrize('batch', [1, 3])
@pytest.mark.parametrize('length,dim', [(1, 16), (2, 16), (7, 16), (64, 16), (197, 16),
                                        (1000, 4)])
def test_chunked_matches_float64_reference(gen, batch, length, dim):
    inputs = make_inputs(gen, batch, dim, length)
    cotangent = torch.randn(batch, dim, length, generator=gen, dtype=torch.float64)
    want = value_and_grads(scan_reference, inputs, cotangent)
    assert want[0].dtype == torch.float64
    f32 = [t.float() for t in inputs]
    assert_close(value_and_grads(scan_chunked, f32, cotangent), want, 1e-4, 'chunked float32')
    assert_close(value_and_grads(scan_chunked, inputs, cotangent), want, 1e-10, 'chunked float64')
    if length <= 64:  # the sequential backend in float32, where it is cheap
        assert_close(value_and_grads(scan_reference, f32, cotangent), want, 1e-4, 'torch float32')


@pytest.mark.parametrize('length', [1, 2, 7, 64, 197])
def test_doubling_matches_float64_reference(gen, length, batch=2, dim=8):
    """The export scan (structure independent of L) against the float64 reference."""
    inputs = make_inputs(gen, batch, dim, length)
    cotangent = torch.randn(batch, dim, length, generator=gen, dtype=torch.float64)
    want = value_and_grads(scan_reference, inputs, cotangent)
    f32 = [t.float() for t in inputs]
    assert_close(value_and_grads(scan_doubling, f32, cotangent), want, 1e-4, 'doubling float32')
    assert_close(value_and_grads(scan_doubling, inputs, cotangent), want, 1e-10,
                 'doubling float64')


def test_doubling_rejects_sequences_beyond_its_levels(gen):
    a, x = torch.rand(1, 9), torch.randn(1, 9)
    with pytest.raises(ValueError, match=r'L = 9 exceeds 2\*\*3'):
        linear_scan_doubling(a, x, levels=3)
    assert torch.allclose(linear_scan_doubling(a[:, :8], x[:, :8], levels=3),
                          linear_scan(a[:, :8], x[:, :8]), atol=1e-6)


@pytest.mark.parametrize('batch', [1, 3])
def test_chunked_matches_float64_reference_long(gen, batch, length=8192, dim=4):
    """As above, but the reference's backward takes minutes at this length (each step's
    select backward adds a full-size gradient), so its gradient is checked along one random
    direction by central differences of two float64 reference forwards."""
    inputs = make_inputs(gen, batch, dim, length)
    cotangent = torch.randn(batch, dim, length, generator=gen, dtype=torch.float64)
    got = value_and_grads(scan_chunked, [t.float() for t in inputs], cotangent)
    got64 = value_and_grads(scan_chunked, inputs, cotangent)
    assert rel_err(got[0], scan_reference(*inputs)) <= 1e-4
    assert_close(got, got64, 1e-4, 'chunked float32 vs float64')
    direction = [torch.randn(t.shape, generator=gen, dtype=torch.float64) for t in inputs]
    eps = 1e-6

    def objective(sign):
        shifted = [t + sign * eps * v for t, v in zip(inputs, direction)]
        return (scan_reference(*shifted) * cotangent).sum()

    want = (objective(1) - objective(-1)) / (2 * eps)
    for grads in (got[1:], got64[1:]):
        slope = sum((g * v).sum() for g, v in zip(grads, direction))
        assert abs(slope - want) <= 1e-4 * abs(want), (slope.item(), want.item())


@pytest.mark.parametrize('backend', ['torch', 'chunked'])
def test_bfloat16_inputs_upcast(gen, backend):
    inputs = make_inputs(gen, 2, 16, 50)
    y = selective_scan(*[t.bfloat16() for t in inputs], backend=backend)
    assert y.dtype == torch.float32
    assert rel_err(y.double(), scan_reference(*inputs)) <= 1e-2


@pytest.mark.parametrize('chunk_size', [2, 3, 4, 5, 8])
@pytest.mark.parametrize('length', [1, 3, 4, 9, 17, 26])
def test_linear_scan_any_chunk_size(gen, chunk_size, length):
    a = torch.rand(2, 3, length, generator=gen, dtype=torch.float64)
    x = torch.randn(2, 3, length, generator=gen, dtype=torch.float64)
    h, want = torch.zeros(2, 3, dtype=torch.float64), []
    for pos in range(length):
        h = a[..., pos] * h + x[..., pos]
        want.append(h)
    torch.testing.assert_close(linear_scan(a, x, chunk_size), torch.stack(want, -1))
    # the sequence-major layout: positions on dim -2, channels last
    seq_major = linear_scan(a.transpose(1, 2), x.transpose(1, 2), chunk_size, dim=-2)
    torch.testing.assert_close(seq_major, torch.stack(want, 1))


@pytest.mark.parametrize('fn,length', [(scan_reference, 5), (scan_chunked, 5),
                                       (scan_chunked, 17)])
def test_gradcheck_float64(gen, fn, length):
    inputs = [t.requires_grad_() for t in make_inputs(gen, 2, 3, length)]
    assert torch.autograd.gradcheck(fn, inputs)


def test_large_delta_stays_finite_and_accurate(gen):
    inputs = make_inputs(gen, 2, 8, 300, delta_max=30.0, log_a_max=3.0)
    assert F.softplus(inputs[1]).max() > 25 and inputs[2].min() < -15
    cotangent = torch.randn(2, 8, 300, generator=gen, dtype=torch.float64)
    want = value_and_grads(scan_reference, inputs, cotangent)
    assert_close(value_and_grads(scan_chunked, [t.float() for t in inputs], cotangent), want,
                 1e-4, 'chunked float32')


def test_unknown_backend_raises(gen, monkeypatch):
    inputs = make_inputs(gen, 1, 2, 3)
    with pytest.raises(ValueError, match='nope'):
        selective_scan(*inputs, backend='nope')
    monkeypatch.setenv(sel.ENV_VAR, 'nope_env')
    with pytest.raises(ValueError, match=sel.ENV_VAR):
        selective_scan(*inputs)


def test_mamba_ssm_on_cpu_raises_helpful_error(gen):
    inputs = make_inputs(gen, 1, 2, 3, dtype=torch.float32)
    with pytest.raises(RuntimeError) as info:
        selective_scan(*inputs, backend='mamba_ssm')
    msg = str(info.value)
    for part in ("'mamba_ssm'", 'CUDA', "'chunked'"):
        assert part in msg
    if _import_error() is not None:  # the package is missing too: say how to install it
        assert 'tools/build_cuda_wheels.sh mamba-ssm' in msg


def test_env_var_selects_backend(gen, monkeypatch):
    calls = []
    monkeypatch.setitem(sel.BACKENDS, 'torch', lambda *args: calls.append(len(args)) or args[0])
    inputs = make_inputs(gen, 1, 2, 3)
    monkeypatch.setenv(sel.ENV_VAR, 'torch')
    selective_scan(*inputs)
    assert calls == [7]
    selective_scan(*inputs, backend='chunked')  # an explicit argument beats the variable
    assert calls == [7]
    monkeypatch.setenv(sel.ENV_VAR, 'mamba_ssm')  # an unavailable choice raises, no fallback
    with pytest.raises(RuntimeError, match=sel.ENV_VAR):
        selective_scan(*inputs)


def test_auto_is_chunked_on_cpu_and_logs_once(gen, monkeypatch, registry):
    monkeypatch.delenv(sel.ENV_VAR, raising=False)
    messages = []
    monkeypatch.setattr(sel, '_log', messages.append)
    monkeypatch.setattr(sel, '_auto_logged', set())
    sel._auto_cache.clear()
    u = make_inputs(gen, 1, 2, 3, dtype=torch.float32)[0]
    assert [sel.resolve_backend(b, u) for b in ('auto', None, 'auto')] == ['chunked'] * 3
    assert len(messages) == 1 and "'chunked'" in messages[0]


def test_registered_backend_used_by_auto_only_when_available(gen, monkeypatch, registry):
    monkeypatch.delenv(sel.ENV_VAR, raising=False)
    monkeypatch.setattr(sel, '_log', lambda msg: None)
    u = make_inputs(gen, 1, 2, 3, dtype=torch.float32)[0]
    sel.register_backend('triton', scan_chunked, lambda t: 'needs CUDA tensors')
    assert sel.resolve_backend('auto', u) == 'chunked'
    with pytest.raises(RuntimeError, match='needs CUDA tensors'):
        sel.resolve_backend('triton', u)
    sel.register_backend('triton', scan_chunked)
    assert sel.resolve_backend('auto', u) == 'triton'


def _fake_selective_scan_fn(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                            delta_softplus=False, return_last_state=False):
    """mamba_ssm's documented semantics, sequentially: grouped B/C (batch, G, N, L)."""
    dt = delta + delta_bias[:, None]
    dt = F.softplus(dt) if delta_softplus else dt
    group = torch.arange(u.shape[1]) * B.shape[1] // u.shape[1]
    Bc, Cc = B[:, group], C[:, group]                   # (batch, channels, N, L)
    h, ys = u.new_zeros(u.shape[0], u.shape[1], A.shape[1]), []
    for pos in range(u.shape[-1]):
        x = (dt[..., pos] * u[..., pos])[..., None] * Bc[..., pos]
        h = (dt[..., pos, None] * A).exp() * h + x
        ys.append((h * Cc[..., pos]).sum(-1))
    return torch.stack(ys, -1) + D[:, None] * u


def test_mamba_ssm_layout_with_stand_in_kernel(gen, monkeypatch):
    """Runs the layout code of the CUDA backend on CPU with a pure-PyTorch stand-in kernel."""
    module = types.ModuleType('mamba_ssm.ops.selective_scan_interface')
    module.selective_scan_fn = _fake_selective_scan_fn
    for name in ('mamba_ssm', 'mamba_ssm.ops'):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    inputs = make_inputs(gen, 2, 5, 11, dtype=torch.float32)
    torch.testing.assert_close(scan_mamba_ssm(*inputs), scan_reference(*inputs))


def test_chunked_exports(gen):
    """torch.export and the TorchScript ONNX exporter (opset 17) both accept the graph."""
    class Scan(torch.nn.Module):
        def forward(self, *inputs):
            return scan_chunked(*inputs)

    inputs = tuple(make_inputs(gen, 1, 4, 49, dtype=torch.float32))
    program = torch.export.export(Scan(), inputs)
    torch.testing.assert_close(program.module()(*inputs), scan_chunked(*inputs))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try:
            torch.onnx.export(Scan(), inputs, buffer, dynamo=False, opset_version=17,
                              input_names=list(NAMES))
        except (ImportError, TypeError) as err:  # exporter removed/renamed in this torch
            pytest.skip(f'TorchScript ONNX exporter unavailable: {err}')
    assert buffer.getvalue()
    onnx = pytest.importorskip('onnx')
    ops = {node.op_type for node in onnx.load_from_string(buffer.getvalue()).graph.node}
    assert not ops & {'Loop', 'If', 'Scan'}, ops  # straight-line graph, no control flow
    ort = pytest.importorskip('onnxruntime')
    session = ort.InferenceSession(buffer.getvalue(), providers=['CPUExecutionProvider'])
    (got,) = session.run(None, {n: t.numpy() for n, t in zip(NAMES, inputs)})
    torch.testing.assert_close(torch.from_numpy(got), scan_chunked(*inputs),
                               rtol=1e-4, atol=1e-5)
