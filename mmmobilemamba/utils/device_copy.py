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


def views_on_device(tensors: Sequence[Tensor], device: torch.device) -> List[Tensor]:
    """CPU ``tensors`` on ``device``, each storage they view copied once (as
    :func:`on_device`) and viewed back with the same offsets, shapes and strides: a batch of
    images from ``one_storage_collate`` travels in one copy."""
    copies, out = {}, []
    for t in tensors:
        storage = t.untyped_storage()
        if storage.data_ptr() not in copies:
            flat = torch.empty(0, dtype=torch.uint8).set_(storage)
            copies[storage.data_ptr()] = on_device(flat, device).untyped_storage()
        out.append(torch.empty(0, dtype=t.dtype, device=device).set_(
            copies[storage.data_ptr()], t.storage_offset(), t.shape, t.stride()))
    return out
