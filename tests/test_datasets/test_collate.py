"""one_storage_collate: mmengine's collate with the batch's per-sample tensors moved into one
storage per dtype, the same values and structure, through a real DataLoader with workers."""
import pytest
import torch
from mmengine.dataset import default_collate, pseudo_collate
from mmengine.registry import FUNCTIONS
from torch.utils.data import DataLoader

pytest.importorskip('mmpretrain')
from mmpretrain.structures import DataSample  # noqa: E402

import mmmobilemamba  # noqa: E402,F401
from mmmobilemamba.datasets.collate import one_storage_collate  # noqa: E402


def sample(i: int, size: int) -> dict:
    g = torch.Generator().manual_seed(i)
    return dict(inputs=torch.randint(0, 256, (size, ), dtype=torch.uint8, generator=g),
                data_samples=DataSample(metainfo=dict(img_path=f'{i}.JPEG')).set_gt_label(i))


class Bytes(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 12

    def __getitem__(self, i: int) -> dict:
        return sample(i, 100 + 7 * i)


def storages(batch: dict) -> set:
    tensors = list(batch['inputs']) + [s.gt_label for s in batch['data_samples']]
    return {t.untyped_storage().data_ptr() for t in tensors}


def test_same_batch_as_pseudo_collate_in_two_storages():
    items = [sample(i, 50 + i) for i in range(5)]
    theirs = pseudo_collate([dict(d, data_samples=d['data_samples'].clone()) for d in items])
    ours = one_storage_collate(items)
    assert len(ours['inputs']) == 5
    for a, b in zip(ours['inputs'], theirs['inputs']):
        assert torch.equal(a, b)
    for a, b in zip(ours['data_samples'], theirs['data_samples']):
        assert torch.equal(a.gt_label, b.gt_label) and a.img_path == b.img_path
    assert len(storages(ours)) == 2  # the bytes (uint8) and the labels (int64)


def test_default_collate_base_keeps_the_stacked_inputs():
    items = [dict(inputs=torch.full((3, 4, 4), i, dtype=torch.uint8),
                  data_samples=DataSample().set_gt_label(i)) for i in range(3)]
    ours = one_storage_collate(items, base='default_collate')
    assert torch.equal(ours['inputs'], default_collate(items)['inputs'])
    labels = [s.gt_label for s in ours['data_samples']]
    assert [int(t) for t in labels] == [0, 1, 2]
    assert len({t.untyped_storage().data_ptr() for t in labels}) == 1


def test_registered_for_configs_and_refuses_an_unknown_base():
    assert FUNCTIONS.get('one_storage_collate') is one_storage_collate
    with pytest.raises(ValueError, match="base must be one of"):
        one_storage_collate([sample(0, 4)], base='collate')


def test_keeps_strides_and_copies_in_memory_order():
    """A decoder's HWC image viewed as CHW travels in its memory order, untransposed."""
    hwc = [torch.randint(0, 256, (h, 5, 3), dtype=torch.uint8) for h in (4, 6)]
    items = [dict(inputs=img.permute(2, 0, 1), data_samples=DataSample().set_gt_label(i))
             for i, img in enumerate(hwc)]
    ours = one_storage_collate(items)
    for view, img in zip(ours['inputs'], hwc):
        assert torch.equal(view, img.permute(2, 0, 1)) and view.stride() == (1, 15, 3)
    flat = torch.empty(0, dtype=torch.uint8).set_(ours['inputs'][0].untyped_storage())
    assert torch.equal(flat, torch.cat([img.reshape(-1) for img in hwc]))


def collate_and_report(data_batch: list) -> dict:
    batch = one_storage_collate(data_batch)
    return dict(batch, made_shared=batch['inputs'][0].is_shared())


def test_through_dataloader_workers():
    loader = DataLoader(Bytes(), batch_size=4, num_workers=2, collate_fn=collate_and_report)
    batches = list(loader)
    assert len(batches) == 3
    for k, batch in enumerate(batches):
        for j, (data, s) in enumerate(zip(batch['inputs'], batch['data_samples'])):
            want = sample(4 * k + j, 100 + 7 * (4 * k + j))
            assert torch.equal(data, want['inputs'])
            assert int(s.gt_label) == 4 * k + j
        assert batch['made_shared']  # by the worker: sending it copies nothing more
    assert not next(iter(DataLoader(Bytes(), batch_size=4, collate_fn=collate_and_report))
                    )['made_shared']  # no worker: plain memory
