"""One entry point for the bidirectional selective scan, with selectable backends.

The scan of MobileMamba's SS2D (VMamba forward type v052d) has d_state N = 1 and K = 2
directions: direction 0 runs over positions 0..L-1, direction 1 over L-1..0, and their
outputs are summed per sample. B and C are shared by all channels of a direction.
"""
import logging
import os
from typing import Callable, Dict

import torch

from .scan_reference import scan_reference

ENV_VAR = 'MMMOBILEMAMBA_SCAN_BACKEND'
BACKENDS: Dict[str, Callable[..., torch.Tensor]] = {'torch': scan_reference}
logger = logging.getLogger(__name__)


def selective_scan(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                   C: torch.Tensor, D: torch.Tensor, delta_bias: torch.Tensor,
                   backend: str = 'auto') -> torch.Tensor:
    """Bidirectional d_state=1 selective scan.

    Args:
        u: (Bt, d, L) input sequence, positions in row-major image order.
        delta: (Bt, 2, d, L) time steps before bias and softplus, per direction.
        A: (2, d) state matrix (negative), D: (2, d) skip, delta_bias: (2, d).
        B, C: (Bt, 2, L) input/output projections, shared across channels.
        backend: 'torch', 'auto' or a registered backend; ``None``/'auto' reads
            ``$MMMOBILEMAMBA_SCAN_BACKEND`` first.
    Returns:
        y: (Bt, d, L) in float32 (float64 if ``u`` is float64), the sum of both
        directions, each ``C_l h_l + D u_l`` with ``h_l = exp(dt_l A) h_{l-1} + dt_l B_l u_l``
        and ``dt = softplus(delta + delta_bias)``.
    """
    return BACKENDS[resolve_backend(backend, u)](u, delta, A, B, C, D, delta_bias)


def resolve_backend(backend: str, u: torch.Tensor) -> str:
    """Map 'auto' to a concrete backend; reject unknown or unavailable names loudly."""
    if backend in (None, 'auto'):
        backend = os.environ.get(ENV_VAR, 'auto') or 'auto'
    if backend == 'auto':
        return 'torch'
    if backend not in BACKENDS:
        raise ValueError(f'Unknown scan backend {backend!r}; choose one of '
                         f"{sorted(BACKENDS) + ['auto']} (argument or ${ENV_VAR}).")
    return backend
