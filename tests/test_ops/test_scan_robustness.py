"""Numerical robustness of the CPU scan backends ('torch', 'chunked'), property-tested.

Inputs span what training can feed the scan: pre-softplus delta uniform in [-30, 30] or of
magnitude 1e-6..1e4 (either sign), -A of 1e-4..1e2, u/B/C over six decades, lengths up to
48 (and one L = 20,000 case), float32 inputs and bf16/fp16 inputs under CPU autocast.

Tolerance. Every backend computes in float32 (low-precision inputs are upcast), so we compare
with the float64 reference run on the *same* (rounded) inputs and bound the float32 rounding:
each state is a sum of terms ``(prod a) * dt * B * u`` with decays ``a = exp(dt A)`` in
(0, 1]; each of the at most L steps of a chain adds a few roundings of relative size eps,
and the decay's own error, ``eps * S * exp(-S)`` for a summed exponent S, stays below eps.
``softplus`` of z = delta + bias in float32 has relative error up to about ``|z| eps``, which
matters only while ``exp(z)`` is a normal float32 (|z| < 88 for negative z); below that dt
is float32-denormal or zero and its term is negligible next to ``D u``. Hence, per output
element, ``|y - y64| <= 8 (L + 100) eps32 * y_abs``, where ``y_abs`` is the reference run
on ``|u|, |B|, |C|, |D|`` (every term taken positive, so no cancellation hides the scale).
It is a worst case: over 200 draws the measured error stayed below 1% of it (rounding
errors mostly cancel), yet ``test_bound_is_not_vacuous`` shows it still catches one bfloat16
rounding inside the float32 computation.
"""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmmobilemamba.ops import scan_reference, selective_scan

EPS32 = torch.finfo(torch.float32).eps
BACKENDS = ('torch', 'chunked')
# Deterministic draws (CI must be reproducible) and no example database written in the repo.
SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def cpu_autocast_dtypes() -> list:
    """Low-precision dtypes that ``torch.autocast('cpu')`` accepts on this torch build."""
    dtypes = []
    for dtype in (torch.bfloat16, torch.float16):
        try:
            with torch.autocast('cpu', dtype=dtype):
                pass
        except (RuntimeError, ValueError):
            continue
        dtypes.append(dtype)
    return dtypes


@st.composite
def scan_cases(draw, max_length: int = 48) -> dict:
    """Shapes and value ranges from hypothesis; the tensors themselves from a drawn seed."""
    return dict(
        batch=draw(st.integers(1, 2)), dim=draw(st.integers(1, 4)),
        length=draw(st.integers(1, max_length)), seed=draw(st.integers(0, 2**31 - 1)),
        delta_mode=draw(st.sampled_from(['uniform30', 'magnitude', 'constant'])),
        delta_const=draw(st.sampled_from([-1e4, -30.0, -1e-6, 0.0, 1e-6, 30.0, 1e4])),
        log_a=(draw(st.floats(-4, 2)), draw(st.floats(-4, 2))),
        log_scale=draw(st.floats(-3, 3)))


def make_case(case: dict) -> list:
    """float64 (u, delta, A, B, C, D, delta_bias) for one drawn case."""
    gen = torch.Generator().manual_seed(case['seed'])
    b, d, n = case['batch'], case['dim'], case['length']

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    def uniform(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(*shape, generator=gen, dtype=torch.float64)

    if case['delta_mode'] == 'uniform30':
        delta = uniform(-30, 30, b, 2, d, n)
    elif case['delta_mode'] == 'magnitude':
        sign = torch.where(torch.rand(b, 2, d, n, generator=gen) < 0.5, -1.0, 1.0)
        delta = sign.double() * 10**uniform(-6, 4, b, 2, d, n)
    else:
        delta = torch.full((b, 2, d, n), case['delta_const'], dtype=torch.float64)
    lo, hi = sorted(case['log_a'])
    A = -10**uniform(lo, hi, 2, d)
    scale = 10**case['log_scale']
    return [scale * randn(b, d, n), delta, A, randn(b, 2, n) * 10**uniform(-2, 2, b, 2, 1),
            randn(b, 2, n), randn(2, d), 0.5 * randn(2, d)]


def error_bound(inputs64: list) -> torch.Tensor:
    """Per-element bound of the module docstring for inputs already in float64."""
    u, delta, A, B, C, D, bias = inputs64
    y_abs = scan_reference(u.abs(), delta, A, B.abs(), C.abs(), D.abs(), bias)
    return 8 * (u.shape[-1] + 100) * EPS32 * y_abs + 1e-30


def check_against_float64(y: torch.Tensor, rounded: list, what: str) -> None:
    """``y`` from ``rounded`` inputs: finite wherever the float64 reference is, and within
    :func:`error_bound` of it."""
    inputs64 = [t.double() for t in rounded]
    want = scan_reference(*inputs64)
    assert y.dtype == torch.float32, what
    finite = torch.isfinite(want)
    assert finite.all(), f'{what}: float64 reference not finite for finite inputs'
    assert torch.isfinite(y[finite]).all(), f'{what}: NaN/inf where float64 is finite'
    err = (y.double() - want).abs()
    bound = error_bound(inputs64)
    worst = (err / bound).max().item()
    assert worst <= 1, f'{what}: error {err.max().item():.3g} exceeds the bound ({worst:.2f}x)'


@pytest.mark.parametrize('backend', BACKENDS)
@settings(max_examples=40, **SETTINGS)
@given(case=scan_cases())
def test_float32_finite_and_close_to_float64(backend, case):
    inputs = [t.float() for t in make_case(case)]
    check_against_float64(selective_scan(*inputs, backend=backend), inputs, backend)


@pytest.mark.parametrize('backend', BACKENDS)
@settings(max_examples=15, **SETTINGS)
@given(case=scan_cases(max_length=24))
def test_float32_gradients_finite(backend, case):
    """Backward through extreme decays (a = exp(dt A) underflowing to 0) stays finite."""
    inputs = [t.float().requires_grad_() for t in make_case(case)]
    y = selective_scan(*inputs, backend=backend)
    cotangent = torch.randn(y.shape, generator=torch.Generator().manual_seed(case['seed']))
    grads = torch.autograd.grad((y * cotangent).sum(), inputs)
    for name, g in zip(('u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias'), grads):
        assert torch.isfinite(g).all(), f'{backend}: d/d{name} not finite'


@pytest.mark.parametrize('dtype', cpu_autocast_dtypes())
@pytest.mark.parametrize('backend', BACKENDS)
@settings(max_examples=20, **SETTINGS)
@given(case=scan_cases())
def test_low_precision_inputs_under_autocast(backend, dtype, case):
    """bf16/fp16 activations (as AMP produces them) are upcast: float32 output, accurate
    to float32 rounding for the values they hold. (The fp16 range, 65504, covers every
    drawn magnitude.)"""
    inputs = [t.to(dtype) for t in make_case(case)]
    with torch.autocast('cpu', dtype=dtype):
        y = selective_scan(*inputs, backend=backend)
    check_against_float64(y, inputs, f'{backend} {dtype}')


@pytest.mark.parametrize('backend', BACKENDS)
def test_long_sequence_20000(backend):
    """L = 20,000 (a 2,000 x 10 feature map) with delta over the full [-30, 30] range."""
    inputs = make_case(dict(batch=1, dim=3, length=20_000, seed=20_000, delta_mode='uniform30',
                            delta_const=0.0, log_a=(-4.0, 2.0), log_scale=0.0))
    f32 = [t.float() for t in inputs]
    check_against_float64(selective_scan(*f32, backend=backend), f32, f'{backend} L=20000')
    if backend == 'chunked':
        bf16 = [t.bfloat16() for t in inputs]
        with torch.autocast('cpu', dtype=torch.bfloat16):
            y = selective_scan(*bf16, backend=backend)
        check_against_float64(y, bf16, 'chunked bf16 L=20000')


def test_bound_is_not_vacuous():
    """The bound rejects a scan that computes in bfloat16 instead of float32."""
    inputs = make_case(dict(batch=1, dim=4, length=48, seed=1, delta_mode='uniform30',
                            delta_const=0.0, log_a=(-2.0, 1.0), log_scale=0.0))
    rounded = [t.bfloat16().float() for t in inputs]
    u, delta, A, B, C, D, bias = rounded
    dt = F.softplus(delta + bias[None, :, :, None]).bfloat16().float()  # a bf16 compute step
    inv = torch.log(torch.expm1(dt)) - bias[None, :, :, None]  # delta that gives that dt
    y = selective_scan(u, inv, A, B, C, D, bias, backend='chunked')
    with pytest.raises(AssertionError, match='exceeds the bound'):
        check_against_float64(y, rounded, 'bf16 compute')
