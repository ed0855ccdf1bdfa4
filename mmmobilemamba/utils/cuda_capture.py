"""CUDA graph captures that never overlap, whichever thread makes them."""
import threading
from contextlib import contextmanager
from typing import Iterator, Optional

import torch

_CAPTURE_LOCK = threading.Lock()


@contextmanager
def capture(graph: torch.cuda.CUDAGraph,
            stream: Optional[torch.cuda.Stream] = None) -> Iterator[None]:
    """``torch.cuda.graph(graph, stream, capture_error_mode='thread_local')``, one capture
    at a time in the process.

    The training thread captures its step while ``PrefetchBatchesHook``'s thread captures
    the augmentation for each new pair of group sizes, at moments neither controls. Other
    threads may keep running kernels during a capture, but two captures must not overlap:
    entering one synchronises the device and empties the allocator's cache (cudaFree),
    which invalidates a capture under way in another thread (cuDNN then fails inside it,
    or a thread hangs).
    """
    with _CAPTURE_LOCK, torch.cuda.graph(graph, stream=stream,
                                         capture_error_mode='thread_local'):
        yield
