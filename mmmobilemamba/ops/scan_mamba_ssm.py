"""Backend on the fused CUDA kernel of the optional ``mamba_ssm`` package.

``mamba_ssm`` is CUDA-only and often absent, so it is imported lazily here and never at
module import. Its kernel scans forwards only: the two directions become 2*d channels
with one B/C group each, direction 1 fed reversed and its output reversed back.
"""
import functools
import importlib
from typing import List, Optional

import torch

from .scan_chunked import flip_direction1

INSTALL_HINT = ('build it for this card with `bash tools/build_cuda_wheels.sh mamba-ssm` '
                '(needs a CUDA toolkit; docs/get_started.md)')


@functools.lru_cache(maxsize=None)
def _import_error() -> Optional[str]:
    """Why ``mamba_ssm`` cannot be imported, or None; cached since a failed build stays failed."""
    try:
        importlib.import_module('mamba_ssm.ops.selective_scan_interface')
    except Exception as err:  # ImportError, or OSError/RuntimeError from a mismatched build
        return f'{type(err).__name__}: {err}'
    return None


def mamba_ssm_unavailable(u: torch.Tensor) -> Optional[str]:
    """Why the kernel cannot run on tensors like ``u`` (with the fix), or None if it can."""
    problems: List[str] = []
    if u.device.type != 'cuda':
        problems.append(f'its kernel needs CUDA tensors, got {u.device.type} tensors')
    if u.dtype == torch.float64:
        problems.append('its kernel has no float64 version')
    # While torch.compile traces 'auto' on CPU tensors the answer is known already; an import
    # there would be a graph break. Eagerly the message also says how to install it.
    err = None if problems and torch.compiler.is_compiling() else _import_error()
    if err is not None:
        problems.append(f'the mamba_ssm package cannot be imported ({err}); {INSTALL_HINT}')
    return '; '.join(problems) or None


def scan_mamba_ssm(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                   C: torch.Tensor, D: torch.Tensor, delta_bias: torch.Tensor) -> torch.Tensor:
    """Bidirectional d_state=1 scan via ``mamba_ssm``'s ``selective_scan_fn`` (float32)."""
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

    batch, dim, length = u.shape
    u_k = torch.stack([u, u.flip(-1)], 1).float().reshape(batch, 2 * dim, length)
    delta_k = flip_direction1(delta).float().reshape(batch, 2 * dim, length)
    B_k = flip_direction1(B).float().unsqueeze(2).contiguous()  # (Bt, K groups, N=1, L)
    C_k = flip_direction1(C).float().unsqueeze(2).contiguous()
    A_k, D_k, bias_k = (t.float().reshape(2 * dim) for t in (A, D, delta_bias))
    y = selective_scan_fn(u_k, delta_k, A_k[:, None], B_k, C_k, D_k, delta_bias=bias_k,
                          delta_softplus=True)
    y = y.view(batch, 2, dim, length)
    return y[:, 0] + y[:, 1].flip(-1)
