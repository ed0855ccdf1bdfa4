"""FLOP counting with MMEngine's jit-based FlopAnalyzer, in the paper's convention.

One multiply-add is one FLOP; every op uses MMEngine's default handles, plus two additions
(docs/architecture.md, "FLOP counting", says why and gives the numbers):

* the selective scan counts ``9*B*L*D*N + B*D*L`` with ``D = 2 * d_inner`` (both
  directions) and ``N = 1``;
* each Haar transform counts as the 2x2 stride-2 grouped (transposed) convolution it
  equals, ``4 * C * H * W`` for a padded ``C x H x W`` input: our broadcast mix computes the
  same sums but is invisible to the analyzer.

``convention='paper'`` then leaves out the wavelet-domain depthwise convolution, which the
count of the published implementation misses (its ``padding='same'`` traces as
``aten::_convolution_mode``, for which the analyzer has no handle); that reproduces the
published FLOPs of all six variants to their last printed digit. ``'full'`` keeps it.
"""
from contextlib import contextmanager
from typing import Iterator, List, Tuple

import torch
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape
from torch import nn

from mmmobilemamba.models.layers.ss2d import scan_backend
from mmmobilemamba.models.layers.wavelet_mamba import MBWTConv2d
from mmmobilemamba.ops.selective_scan import BACKENDS, register_backend

COUNT_BACKEND = 'flop_count'
CONVENTIONS = ('paper', 'full')


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


@contextmanager
def counting_haar(model: nn.Module) -> Iterator[List[int]]:
    """Yield a list that collects, per MBWTConv2d call, the FLOPs of its two Haar
    transforms: analysis and synthesis, ``4 * C * Hp * Wp`` each for the even-padded input."""
    counts: List[int] = []

    def record(module: nn.Module, args: tuple) -> None:
        n, c, h, w = args[0].shape
        counts.append(2 * 4 * int(n) * int(c) * (int(h) + int(h) % 2) * (int(w) + int(w) % 2))

    handles = [m.register_forward_pre_hook(record) for m in model.modules()
               if isinstance(m, MBWTConv2d)]
    try:
        yield counts
    finally:
        for h in handles:
            h.remove()


def count_flops(model: nn.Module, inputs: Tuple, convention: str = 'paper') -> Tuple[int, int]:
    """(FLOPs, parameters) of ``model(*inputs)`` in eval mode; ``convention`` is 'paper'
    (as the published tables count) or 'full' (also the wavelet-domain depthwise convs)."""
    if convention not in CONVENTIONS:
        raise ValueError(f'Unknown FLOP convention {convention!r}; choose one of {CONVENTIONS} '
                         "('paper' reproduces the published numbers, 'full' counts every conv).")
    model.eval()
    with counting_scan(model), counting_haar(model) as haar, torch.no_grad():
        analyzer = FlopAnalyzer(model, inputs)
        analyzer.set_op_handle(f'prim::PythonOp.{_CountedScan.__name__}', scan_flop_handle)
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        flops = analyzer.total() + sum(haar)
        if convention == 'paper':
            by_module = analyzer.by_module()
            flops -= sum(by_module[f'{name}.wavelet_convs' if name else 'wavelet_convs']
                         for name, m in model.named_modules() if isinstance(m, MBWTConv2d))
    return int(flops), sum(p.numel() for p in model.parameters())
