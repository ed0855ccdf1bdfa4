"""MobileMamba(compile_cfg=...): the stages under torch.compile, the checks around them eager.

On the CPU the scans are Python loops over the sequence, which TorchDynamo specialises on its
length; on the GPU the Triton scan is one opaque operator. The size test below wraps the
CPU scan in such an operator, so that what it counts is the backbone's own graphs.
tests/test_models/test_backbone_compile_cuda.py runs the real thing with inductor.
"""
import copy
import importlib

import pytest
import torch
from torch._dynamo.utils import counters

from mmmobilemamba.models.backbones import MobileMamba
from mmmobilemamba.models.layers import MBWTConv2d

scan_module = importlib.import_module('mmmobilemamba.ops.selective_scan')


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def _pair(tiny_arch, compile_cfg, **kwargs):
    torch.manual_seed(0)
    eager = MobileMamba(tiny_arch(), out_indices=(1, 2, 3), scan_backend='chunked', **kwargs)
    compiled = MobileMamba(tiny_arch(), out_indices=(1, 2, 3), scan_backend='chunked',
                           compile_cfg=compile_cfg, **kwargs)
    compiled.load_state_dict(eager.state_dict())
    return eager, compiled


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """No compiled code or size history carried from one test to the next (a size seen
    as dynamic earlier would make the next compile trace the CPU scan symbolically)."""
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


@pytest.fixture
def opaque_cpu_scan(monkeypatch):
    """The 'chunked' scan as one custom operator (forward only), as the Triton scan is."""
    chunked = scan_module.BACKENDS['chunked']

    @torch.library.custom_op('mmmobilemamba_test::chunked_scan', mutates_args=())
    def scan(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
             C: torch.Tensor, D: torch.Tensor, delta_bias: torch.Tensor) -> torch.Tensor:
        return chunked(u, delta, A, B, C, D, delta_bias)

    @scan.register_fake
    def _(u, delta, A, B, C, D, delta_bias):
        return u.new_empty(u.shape, dtype=torch.promote_types(u.dtype, torch.float32))

    monkeypatch.setitem(scan_module.BACKENDS, 'chunked', lambda *args: scan(*args))


def test_compile_cfg_must_be_a_dict():
    with pytest.raises(TypeError, match=r'compile_cfg must be None or a dict .*dynamic=True'):
        MobileMamba('t2', compile_cfg=True)


def test_one_graph_for_sizes_of_either_parity(tiny_arch, opaque_cpu_scan):
    """dynamic=True: inputs whose stride-32 and stride-64 maps are odd or even in either
    direction all run through the first graph, with the eager model's exact outputs."""
    eager, compiled = _pair(tiny_arch, dict(backend='aot_eager', dynamic=True))
    assert all(m.pad_any_parity for m in compiled.modules() if isinstance(m, MBWTConv2d))
    eager.eval(), compiled.eval()
    with torch.no_grad():
        for h, w in [(192, 256), (256, 192), (224, 320), (320, 224)]:
            x = torch.randn(2, 3, h, w)
            for ours, ref in zip(compiled(x), eager(x)):
                assert ours.shape == ref.shape
                assert _rel(ours, ref) < 1e-6, (h, w)
    assert counters['stats']['unique_graphs'] == 1


def test_trains_like_eager_and_keeps_its_state_dict(tiny_arch):
    """Forward and backward match the eager model; the state_dict (checkpoints, EMA, resume)
    has the same keys; a deep copy (an EMA model) runs its own weights."""
    eager, compiled = _pair(tiny_arch, dict(backend='aot_eager'), drop_path_rate=0.0)
    assert list(compiled.state_dict()) == list(eager.state_dict())
    x = torch.randn(2, 3, 64, 96)  # short scans: TorchDynamo unrolls the CPU scan's loop
    sum(y.square().mean() for y in compiled(x)).backward()
    sum(y.square().mean() for y in eager(x)).backward()
    grads = dict(eager.named_parameters())
    for name, p in compiled.named_parameters():
        if p.grad is not None:
            assert _rel(p.grad, grads[name].grad) < 1e-4, name
    twin = copy.deepcopy(compiled).eval()
    with torch.no_grad():
        for p in twin.parameters():
            p.mul_(1.5)
    reference = copy.deepcopy(eager).eval()
    reference.load_state_dict(twin.state_dict())
    with torch.no_grad():
        for ours, ref in zip(twin(x), reference(x)):
            assert _rel(ours, ref) < 1e-5


def test_a_trace_runs_the_plain_stages(tiny_arch):
    """torch.jit.trace (as ONNX export does) sees the stages' own code, not a compiled one."""
    eager, compiled = _pair(tiny_arch, dict(backend='aot_eager', dynamic=True))
    eager.eval(), compiled.eval()
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        traced = torch.jit.trace(compiled, x, check_trace=False)
        for ours, ref in zip(traced(x), eager(x)):
            assert _rel(ours, ref) < 1e-6


@pytest.mark.parametrize('cfg, options', [
    (dict(dynamic=True), {'triton.coalesce_tiling_analysis': False}),
    (dict(), {'triton.coalesce_tiling_analysis': False}),
    (dict(dynamic=True, options={'triton.coalesce_tiling_analysis': True, 'max_autotune': True}),
     {'triton.coalesce_tiling_analysis': True, 'max_autotune': True}),
    (dict(dynamic=False), None),
    (dict(dynamic=True, mode='max-autotune'), None),
    (dict(dynamic=True, backend='aot_eager'), None),
])
def test_inductor_skips_its_tiling_analysis_for_dynamic_sizes(cfg, options):
    """Inductor's coalescing analysis fails on symbolic sizes (torch 2.11): off by default
    where sizes may be dynamic, and only where inductor takes ``options``; a config's own
    setting wins."""
    from mmmobilemamba.models.backbones.mobilemamba import compile_kwargs
    kwargs = compile_kwargs(cfg)
    assert kwargs.get('options') == options
    assert {k: v for k, v in kwargs.items() if k != 'options'} == {
        k: v for k, v in cfg.items() if k != 'options'}
    # torch.compile checks option names against the installed inductor's config here
    # ('Unexpected optimization option'), before anything is compiled.
    torch.compile(torch.nn.Identity(), **kwargs)
