"""One entry point for the bidirectional selective scan, with selectable backends.

The scan of MobileMamba's SS2D (VMamba forward type v052d) has d_state N = 1 and K = 2
directions: direction 0 runs over positions 0..L-1, direction 1 over L-1..0, and their
outputs are summed per sample. B and C are shared by all channels of a direction.
"""
import logging
import os
from typing import Callable, Dict, Optional, Set, Tuple

import torch

from .scan_chunked import scan_chunked
from .scan_mamba_ssm import mamba_ssm_unavailable, scan_mamba_ssm
from .scan_reference import scan_reference
from .scan_triton import scan_triton, triton_unavailable

ENV_VAR = 'MMMOBILEMAMBA_SCAN_BACKEND'
#: 'auto' takes the first registered backend that can run on the inputs.
AUTO_ORDER = ('triton', 'mamba_ssm', 'chunked')
ScanFn = Callable[..., torch.Tensor]
Unavailable = Callable[[torch.Tensor], Optional[str]]

BACKENDS: Dict[str, ScanFn] = {}
_UNAVAILABLE: Dict[str, Unavailable] = {}
_auto_cache: Dict[Tuple[str, torch.dtype], str] = {}
_auto_logged: Set[Tuple[str, str]] = set()
logger = logging.getLogger(__name__)


def _always_available(u: torch.Tensor) -> Optional[str]:
    return None


def register_backend(name: str, fn: ScanFn, unavailable: Optional[Unavailable] = None) -> None:
    """Add (or replace) a backend with ``selective_scan``'s signature, minus ``backend``.

    ``unavailable(u)`` returns why ``fn`` cannot run on tensors like ``u`` (device, dtype,
    missing package) together with the fix, or None when it can; omit it for pure PyTorch.
    """
    BACKENDS[name] = fn
    _UNAVAILABLE[name] = unavailable or _always_available
    _auto_cache.clear()


register_backend('torch', scan_reference)
register_backend('chunked', scan_chunked)
register_backend('mamba_ssm', scan_mamba_ssm, mamba_ssm_unavailable)
register_backend('triton', scan_triton, triton_unavailable)


def selective_scan(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                   C: torch.Tensor, D: torch.Tensor, delta_bias: torch.Tensor,
                   backend: str = 'auto') -> torch.Tensor:
    """Bidirectional d_state=1 selective scan.

    Args:
        u: (Bt, d, L) input sequence, positions in row-major image order.
        delta: (Bt, 2, d, L) time steps before bias and softplus, per direction.
        A: (2, d) state matrix (negative), D: (2, d) skip, delta_bias: (2, d).
        B, C: (Bt, 2, L) input/output projections, shared across channels.
        backend: 'torch' (sequential reference), 'chunked' (vectorised PyTorch),
            'mamba_ssm' (CUDA kernel), 'triton' (GPU kernel), another registered backend,
            or 'auto';
            ``None``/'auto' reads ``$MMMOBILEMAMBA_SCAN_BACKEND`` first, then takes the
            first available of ``AUTO_ORDER``. An unavailable explicit choice raises.
    Returns:
        y: (Bt, d, L) in float32 (float64 if ``u`` is float64), the sum of both
        directions, each ``C_l h_l + D u_l`` with ``h_l = exp(dt_l A) h_{l-1} + dt_l B_l u_l``
        and ``dt = softplus(delta + delta_bias)``.
    """
    return BACKENDS[resolve_backend(backend, u)](u, delta, A, B, C, D, delta_bias)


def resolve_backend(backend: Optional[str], u: torch.Tensor) -> str:
    """Map 'auto' to a concrete backend; reject unknown or unavailable names loudly."""
    source = 'the backend argument'
    if backend in (None, 'auto'):
        backend = os.environ.get(ENV_VAR, '') or 'auto'
        source = f'${ENV_VAR}'
    if backend == 'auto':
        return _auto_backend(u)
    if backend not in BACKENDS:
        raise ValueError(f'Unknown scan backend {backend!r} (from {source}); choose one of '
                         f"{sorted(BACKENDS) + ['auto']}.")
    reason = _UNAVAILABLE[backend](u)
    if reason is not None:
        raise RuntimeError(f'Scan backend {backend!r} (from {source}) cannot run here: '
                           f"{reason}. Alternatively choose backend='chunked' (pure PyTorch, "
                           "any device) or 'auto'.")
    return backend


def _auto_backend(u: torch.Tensor) -> str:
    """First available backend of ``AUTO_ORDER``, cached per device type and dtype."""
    key = (u.device.type, u.dtype)
    if key not in _auto_cache:
        _auto_cache[key] = next(n for n in AUTO_ORDER
                                if n in BACKENDS and _UNAVAILABLE[n](u) is None)
    name = _auto_cache[key]
    # Logging takes a lock that torch.compile cannot trace; log on the next eager call.
    if (u.device.type, name) not in _auto_logged and not torch.compiler.is_compiling():
        _auto_logged.add((u.device.type, name))
        _log(f"selective_scan backend 'auto' chose {name!r} for {u.device.type} tensors "
             f'(set ${ENV_VAR} or pass backend= to override).')
    return name


def _log(msg: str) -> None:
    """Log through mmengine when it is installed, else the standard logging module."""
    try:
        from mmengine.logging import print_log
    except ImportError:
        logger.info(msg)
    else:
        print_log(msg, logger='current')
