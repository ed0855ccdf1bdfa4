"""Let torch >= 2.6's ``weights_only=True`` loading read MMEngine checkpoints.

MMEngine 0.10.7 calls ``torch.load`` without ``weights_only``; since torch 2.6 that means
``weights_only=True``, which rejects the message hub's HistoryBuffer and NumPy scalars and
breaks ``load_from`` and ``--resume``. Instead of the process-wide escape hatch
(``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``), we allow-list exactly the types MMEngine stores.
``builtins.getattr`` is needed because HistoryBuffer pickles bound methods; the
weights-only unpickler still refuses to call anything that is not allow-listed.
"""
import builtins

import numpy as np
import torch


def checkpoint_safe_globals() -> list:
    """The globals an MMEngine checkpoint (meta, message hub, optimizer) refers to."""
    from mmengine.logging.history_buffer import HistoryBuffer
    from numpy.core import multiarray  # the module path checkpoints record with numpy<2
    dtypes = [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith('DType')]
    return [HistoryBuffer, np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar,
            builtins.getattr] + dtypes


def allow_mmengine_checkpoints() -> None:
    """Register the allow-list once per process (no-op on torch without safe globals)."""
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(checkpoint_safe_globals())
