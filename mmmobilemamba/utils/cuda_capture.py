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
    entering one synchronises the device and empties the allocator's cache, calls that are
    not safe while another thread captures. Overlapping, they broke training on an H100
    (a cuDNN error inside the step's capture, or a hang).
    """
    with _CAPTURE_LOCK, torch.cuda.graph(graph, stream=stream,
                                         capture_error_mode='thread_local'):
        yield
