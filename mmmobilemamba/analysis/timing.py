"""Timing loops shared by the benchmark tools: GPU time from CUDA events, CPU time from
``time.perf_counter``, both per call in milliseconds."""
import time
from typing import Callable, List

import torch


def gpu_time_ms(fn: Callable[[], object], warmup: int, iters: int, repeats: int) -> List[float]:
    """Per-call milliseconds, one number per repeat, each from CUDA events around
    ``iters`` back-to-back calls (so host and device overlap as in a real loop)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(repeats):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        out.append(start.elapsed_time(end) / iters)
    return out


def cpu_time_ms(fn: Callable[[], object], warmup: int, repeats: int) -> List[float]:
    """Milliseconds of each of ``repeats`` calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out
