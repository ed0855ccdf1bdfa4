"""A collate function that hands a batch from the dataloader workers to the training process
in a few shared-memory files instead of one per tensor."""
from collections import defaultdict
from typing import Dict, List, Sequence, Tuple

import torch
from mmengine.dataset import default_collate, pseudo_collate
from mmengine.registry import FUNCTIONS
from mmengine.structures import BaseDataElement
from torch.utils.data import get_worker_info

BASES = {'pseudo_collate': pseudo_collate, 'default_collate': default_collate}


@FUNCTIONS.register_module()
def one_storage_collate(data_batch: Sequence[dict], base: str = 'pseudo_collate') -> dict:
    """mmengine's ``base`` collate, then every per-sample CPU tensor of the batch (the
    ``inputs`` list, the data samples' fields such as ``gt_label``) becomes a view of one
    tensor per dtype. Same values, same structure.

    A worker shares each tensor it returns through its own shared-memory file and file
    descriptor, which the training process then has to receive: for the 128 labels (and,
    with ``--gpu-augment``, the 128 decoded images) of a batch this costs more than reading
    the images. Views of one storage travel as one file (and reach the GPU in one copy).
    In a worker that storage is made in shared memory, as torch's own collate does, so
    sending it copies nothing more. Each tensor keeps its strides: a decoder's HWC image
    viewed as CHW is copied in its memory order, not transposed.
    """
    if base not in BASES:
        raise ValueError(f"one_storage_collate: base must be one of {sorted(BASES)}, got "
                         f"{base!r}.")
    batch = BASES[base](data_batch)
    slots: Dict[torch.dtype, List[tuple]] = defaultdict(list)  # (owner, key, tensor)
    inputs = batch.get('inputs')
    if isinstance(inputs, list):
        _collect(slots, inputs, range(len(inputs)))
    for sample in batch.get('data_samples') or []:
        if isinstance(sample, BaseDataElement):
            _collect(slots, sample, list(sample.keys()))
    for entries in slots.values():
        ordered = [_in_memory_order(t) for _, _, t in entries]
        total = sum(t.numel() for t, _ in ordered)
        flat = ordered[0][0].new_empty(0)
        if get_worker_info() is not None:
            flat = flat.new(ordered[0][0]._typed_storage()._new_shared(total, device='cpu'))
        views = flat.resize_(total).split([t.numel() for t, _ in ordered])
        for (owner, key, _), (tensor, order), view in zip(entries, ordered, views):
            view = view.view(tensor.shape).copy_(tensor).permute(order)  # the one copy
            if isinstance(owner, list):
                owner[key] = view
            else:
                owner.set_field(view, key)
    return batch


def _in_memory_order(t: torch.Tensor) -> Tuple[torch.Tensor, List[int]]:
    """``t`` permuted into its memory order (a view; a crop of an HWC image stays strided
    until it is copied into the batch) and the permutation that gives ``t``'s dimensions
    back."""
    order = sorted(range(t.dim()), key=lambda d: -t.stride(d))
    return t.permute(order), sorted(range(t.dim()), key=order.__getitem__)


def _collect(slots: Dict[torch.dtype, List[tuple]], owner, keys) -> None:
    """Collect ``owner[key]`` (list items) or ``owner.key`` (data fields) that are CPU
    tensors, by dtype."""
    for key in keys:
        value = owner[key] if isinstance(owner, list) else owner.get(key)
        if isinstance(value, torch.Tensor) and value.device.type == 'cpu':
            slots[value.dtype].append((owner, key, value))
