"""FLOP counting with MMEngine's jit-based FlopAnalyzer, plus a handle for the scan.

Conventions (as the paper and spec): one multiply-add = one FLOP; the selective scan counts
``9*B*L*D*N + B*D*L`` with ``D = 2 * d_inner`` (both directions) and ``N = 1``; every other
op uses MMEngine's default handles.
"""
from contextlib import contextmanager
from typing import Iterator, List, Tuple

import torch
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape
from torch import nn

from mmmobilemamba.models.layers.ss2d import scan_backend
from mmmobilemamba.ops.selective_scan import BACKENDS, register_backend

COUNT_BACKEND = 'flop_count'


class _CountedScan(torch.autograd.Function):
    """Runs the chunked scan but shows up in a jit trace as one ``prim::PythonOp``."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, delta_bias):
        return BACKENDS['chunked'](u, delta, A, B, C, D, delta_bias)


def scan_flop_handle(inputs: List, outputs: List) -> int:
    batch, d_inner, length = get_shape(inputs[0])
    d = 2 * d_inner
    return 9 * batch * length * d * 1 + batch * d * length


@contextmanager
def counting_scan(model: nn.Module) -> Iterator[None]:
    """Temporarily route every SS2D of ``model`` through the countable scan."""
    register_backend(COUNT_BACKEND, _CountedScan.apply)
    try:
        with scan_backend(model, COUNT_BACKEND):
            yield
    finally:
        BACKENDS.pop(COUNT_BACKEND, None)


def count_flops(model: nn.Module, inputs: Tuple) -> Tuple[int, int]:
    """(FLOPs, parameters) of ``model(*inputs)`` in eval mode."""
    model.eval()
    with counting_scan(model), torch.no_grad():
        analyzer = FlopAnalyzer(model, inputs)
        analyzer.set_op_handle(f'prim::PythonOp.{_CountedScan.__name__}', scan_flop_handle)
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        flops = analyzer.total()
    return flops, sum(p.numel() for p in model.parameters())
