"""Host-to-device copies that never wait for the GPU."""
from typing import List, Optional, Sequence

import torch
from torch import Tensor


def on_device(values, device: torch.device, dtype: Optional[torch.dtype] = None) -> Tensor:
    """``values`` (a list or a tensor) on ``device`` without stalling the host: a plain
    copy to a CUDA device waits for all queued GPU work (the previous training step), so
    CUDA copies go through pinned memory, asynchronously."""
    values = torch.as_tensor(values, dtype=dtype)
    if values.is_cuda or torch.device(device).type != 'cuda':
        return values.to(device)
    return values.pin_memory().to(device, non_blocking=True)


def on_device_packed(tensors: Sequence[Tensor], device: torch.device) -> List[Tensor]:
    """CPU ``tensors`` on ``device`` in one asynchronous copy (as :func:`on_device`): their
    bytes travel as one buffer and are viewed back in their dtypes and shapes. One copy
    instead of one per tensor keeps the host's cost per batch flat."""
    if not tensors:
        return []
    chunks, layout, start = [], [], 0
    for t in tensors:
        raw = t.contiguous().view(-1).view(torch.uint8)
        layout.append((start, raw.numel(), t.dtype, t.shape))
        chunks += [raw, raw.new_zeros(-raw.numel() % 8)]  # keep each tensor 8-byte aligned
        start += raw.numel() + len(chunks[-1])
    buffer = on_device(torch.cat(chunks), device)
    return [buffer[start:start + size].view(dtype).view(shape)
            for start, size, dtype, shape in layout]
