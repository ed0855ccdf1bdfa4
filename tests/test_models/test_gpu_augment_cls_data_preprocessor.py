"""--gpu-augment's data path on the CPU: use_gpu_augment rewrites a config so that the
workers decode each image (the pipeline's LoadImageFromFile) and draw its parameters
(DrawGPUAugment), the batch of them reaches the preprocessor in one storage, and the toy
recipe trained through it follows the CPU pipeline's loss curve from the same seed (the GPU
run: docs/benchmarks.md)."""
import glob
import json
import os.path as osp
import statistics

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip('mmpretrain')
from mmengine.config import Config  # noqa: E402

import mmmobilemamba  # noqa: E402,F401
from mmmobilemamba.models.data_preprocessors import (  # noqa: E402
    GPUAugmentClsDataPreprocessor, use_gpu_augment)

TOY = 'configs/classification/mobilemamba_t2_8xb128_in1k_toy.py'
S6 = 'configs/classification/mobilemamba_s6_8xb128_in1k.py'


def write_photo(path: str, seed: int = 1, size=(60, 80)) -> None:
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(128, 40, (*size, 3)) + np.arange(size[1])[None, :, None], 0, 255)
    Image.fromarray(img.astype(np.uint8)).save(path, 'JPEG', quality=92)


def test_use_gpu_augment_rewrites_the_recipe():
    cfg = use_gpu_augment(Config.fromfile(S6))
    loader = cfg.train_dataloader
    assert [t['type'] for t in loader.dataset.pipeline] == [
        'LoadImageFromFile', 'DrawGPUAugment', 'PackInputs']
    assert [t['type'] for t in loader.dataset.pipeline[1].transforms] == [
        'RandomResizedCrop', 'RandomFlip', 'RandAugment', 'RandomErasing']
    assert loader.dataset.pipeline[2]['algorithm_keys'] == ('gpu_augment', )
    assert loader.collate_fn == dict(type='one_storage_collate', base='pseudo_collate')
    pre = cfg.data_preprocessor
    assert pre.type == 'GPUAugmentClsDataPreprocessor' and pre.to_rgb and pre.num_classes == 1000
    assert pre.augment == loader.dataset.pipeline[1].transforms
    assert cfg.custom_hooks[-1] == dict(type='PrefetchBatchesHook')
    assert [t['type'] for t in cfg.val_dataloader.dataset.pipeline][0] == 'LoadImageFromFile'
    with pytest.raises(ValueError, match='classification configs'):
        use_gpu_augment(Config.fromfile('configs/segmentation/fpn_mobilemamba_b4.py'))


def test_use_gpu_augment_keeps_a_configured_prefetch_hook():
    cfg = Config.fromfile(S6)
    cfg.custom_hooks = list(cfg.custom_hooks) + [dict(type='PrefetchBatchesHook',
                                                      batches_ahead=3)]
    hooks = use_gpu_augment(cfg).custom_hooks
    assert [h for h in hooks if h['type'] == 'PrefetchBatchesHook'] == [
        dict(type='PrefetchBatchesHook', batches_ahead=3)]


def test_the_workers_batch_arrives_in_one_storage_and_trains(tmp_path, worker_batch):
    """Decoded crop boxes (of different sizes) in one storage, their draws in another; the
    preprocessor gives the one-hot scores ClsDataPreprocessor makes (``to_onehot``) and
    refuses such a batch outside training."""
    cfg = use_gpu_augment(Config.fromfile(S6))
    augment = [dict(type='RandomResizedCrop', scale=32)]
    cfg.train_dataloader.dataset.pipeline[1].transforms = augment
    paths = [str(tmp_path / f'{i}.JPEG') for i in range(3)]
    for i, path in enumerate(paths):
        write_photo(path, i, (60 + 4 * i, 80))
    labels = [4, 0, 2]
    batch = worker_batch(cfg, paths, labels)
    boxes = [s.gpu_augment.long().tolist() for s in batch['data_samples']]
    assert all(box[:2] == [0, 0] for box in boxes)
    assert [tuple(x.shape) for x in batch['inputs']] == [(3, h, w) for _, _, h, w in boxes]
    assert len({x.untyped_storage().data_ptr() for x in batch['inputs']}) == 1
    assert batch['data_samples'][0].gpu_augment.shape == (4, )
    pre = GPUAugmentClsDataPreprocessor(augment=augment, num_classes=5, to_onehot=True)
    with pytest.raises(ValueError, match='only train_dataloader may use it'):
        pre(batch, training=False)
    out = pre(batch, training=True)
    assert out['inputs'].shape == (3, 3, 32, 32) and out['inputs'].dtype == torch.float32
    scores = torch.stack([s.gt_score for s in out['data_samples']])
    assert torch.equal(scores, torch.eye(5, dtype=scores.dtype)[labels])
    assert [s.gt_label.tolist() for s in out['data_samples']] == [[4], [0], [2]]
    assert 'gpu_augment' not in out['data_samples'][0]  # the draws are used up


def test_the_workers_send_the_crop_box_and_the_batch_is_the_same(tmp_path):
    """DrawGPUAugment passes on only the drawn box (offsets reset to 0); the augmented
    batch equals the whole image's with the box where it was drawn, bit for bit."""
    from mmcv.transforms import LoadImageFromFile
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import TRANSFORMS

    from mmmobilemamba.models.data_preprocessors.gpu_augment_cls_data_preprocessor import \
        DrawGPUAugment
    cfg = use_gpu_augment(Config.fromfile(S6))
    transforms = cfg.train_dataloader.dataset.pipeline[1].transforms
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        draw = TRANSFORMS.build(dict(type='DrawGPUAugment', transforms=transforms))
    assert isinstance(draw, DrawGPUAugment)
    images, rows, boxes, full = [], [], [], []
    for i in range(4):
        path = str(tmp_path / f'{i}.JPEG')
        write_photo(path, i, (120 + 8 * i, 160))
        loaded = LoadImageFromFile()(dict(img_path=path))
        whole = torch.from_numpy(loaded['img']).permute(2, 0, 1)
        np.random.seed(i)
        box_only = draw(dict(loaded))
        np.random.seed(i)
        whole_row = draw.augment.draw(*loaded['img'].shape[:2])
        top, left, h, w = whole_row[:4].long().tolist()
        assert box_only['img_shape'] == (h, w)
        assert torch.equal(box_only['img'], whole[:, top:top + h, left:left + w])
        assert torch.equal(box_only['gpu_augment'][4:], whole_row[4:])
        assert box_only['gpu_augment'][:4].tolist() == [0, 0, h, w]
        images.append(box_only['img'])
        rows.append(box_only['gpu_augment'])
        full.append(whole)
        boxes.append(whole_row)
    augment = draw.augment
    seed = torch.Generator().manual_seed(0)
    ours = augment(images, torch.stack(rows), seed)
    seed = torch.Generator().manual_seed(0)
    assert torch.equal(ours, augment(full, torch.stack(boxes), seed))


def epoch_losses(work_dir: str) -> list:
    path = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))[-1]
    with open(path) as f:
        losses = [json.loads(line)['loss'] for line in f if '"loss"' in line]
    assert len(losses) == 80  # 10 epochs x 8 iterations
    return [statistics.mean(losses[i:i + 8]) for i in range(0, 80, 8)]


@pytest.mark.slow
def test_toy_recipe_through_gpu_augment_follows_the_cpu_pipeline(tmp_path, run_tool,
                                                                  data_root_options):
    from mmmobilemamba.datasets.toy_classification import make_toy_imagenet
    root = str(tmp_path / 'toy')
    make_toy_imagenet(root)  # the demo's: 4 classes x (32 train + 8 val), 64 px
    runs = {}
    for name, flags in (('cpu', []), ('gpu-augment', ['--gpu-augment'])):
        work = str(tmp_path / name)
        out = run_tool('tools/train.py', TOY, *flags, '--work-dir', work, '--cfg-options',
                       'randomness.seed=0', 'default_hooks.logger.interval=1',
                       *data_root_options(root), timeout=900).output
        top1 = float(out.rsplit('accuracy/top1: ', 1)[1].split()[0])
        runs[name] = (epoch_losses(work), top1)
    (cpu, cpu_top1), (gpu, gpu_top1) = runs['cpu'], runs['gpu-augment']
    print(f'epoch mean losses: cpu {np.round(cpu, 3)}, gpu-augment {np.round(gpu, 3)}; '
          f'top-1 {cpu_top1} / {gpu_top1}')
    # Other draws of the same distributions: on this machine the epoch means agreed within
    # 0.1 and the last five epochs' within 1.3 %.
    assert max(abs(a - b) for a, b in zip(cpu, gpu)) < 0.15
    assert abs(statistics.mean(cpu[5:]) - statistics.mean(gpu[5:])) < 0.05 * statistics.mean(
        cpu[5:])
    assert gpu[0] - statistics.mean(gpu[5:]) > 0.2  # it learns, as the CPU run does
    assert cpu_top1 >= 50 and gpu_top1 >= 50  # 2x chance, the toy's GPU target


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
@pytest.mark.parametrize('flags', [['--gpu-augment'], ['--gpu-augment', '--cuda-graph']])
def test_toy_recipe_learns_with_gpu_augment_on_cuda(flags, tmp_path, run_tool,
                                                    data_root_options):
    from mmmobilemamba.datasets.toy_classification import make_toy_imagenet
    root = str(tmp_path / 'toy')
    make_toy_imagenet(root)
    out = run_tool('tools/train.py', TOY, *flags, '--work-dir', str(tmp_path / 'work'),
                   '--cfg-options', 'randomness.seed=0', *data_root_options(root),
                   timeout=900).output
    assert float(out.rsplit('accuracy/top1: ', 1)[1].split()[0]) >= 50  # 2x chance


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_a_training_batch_never_waits_for_the_gpu(tmp_path, worker_batch):
    """The S6 recipe's preprocessor (the copies, augmentation, labels, Mixup/CutMix) under
    PyTorch's sync debug mode set to 'error': any host-device synchronisation would raise.
    A wait here would stall the host behind the previous training step every iteration.
    The second and later batches replay the augmentation's CUDA graph."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    cfg = use_gpu_augment(Config.fromfile(S6))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        pre = MODELS.build(dict(cfg.data_preprocessor, batch_augments=cfg.model.train_cfg)
                           ).cuda()  # as ImageClassifier builds it, with Mixup/CutMix
    paths = [str(tmp_path / f'{i}.JPEG') for i in range(8)]
    for i, path in enumerate(paths):
        write_photo(path, i, (300 + 10 * i, 400))
    for _ in range(2):  # eager, then the capture (which synchronises once)
        pre(worker_batch(cfg, paths, list(range(8))), True)
    for _ in range(4):  # one of Mixup/CutMix per batch: both come up with probability 7/8
        batch = worker_batch(cfg, paths, list(range(8)))
        torch.cuda.set_sync_debug_mode('error')
        try:
            out = pre(batch, True)
        finally:
            torch.cuda.set_sync_debug_mode('default')
        assert out['inputs'].shape == (8, 3, 224, 224) and out['inputs'].is_cuda
        scores = torch.stack([s.gt_score for s in out['data_samples']]).cpu()
        assert scores.shape == (8, 1000) and torch.allclose(scores.sum(1), torch.ones(8))
