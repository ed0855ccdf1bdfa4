"""--gpu-augment's data path on the CPU: the workers' LoadImageBytes and the batched decode
give the images mmcv's LoadImageFromFile gives (EXIF orientation, PNG behind a .JPEG name),
use_gpu_augment rewrites a config, and the toy recipe trained through it follows the CPU
pipeline's loss curve from the same seed (the GPU run: docs/benchmarks.md)."""
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
from mmpretrain.registry import TRANSFORMS  # noqa: E402

import mmmobilemamba  # noqa: E402,F401
from mmmobilemamba.models.data_preprocessors import (  # noqa: E402
    GPUAugmentClsDataPreprocessor, decode_images, use_gpu_augment)

TOY = 'configs/classification/mobilemamba_t2_8xb128_in1k_toy.py'


def write_photo(path: str, orientation: int = 1, fmt: str = 'JPEG') -> np.ndarray:
    rng = np.random.default_rng(orientation)
    img = np.clip(rng.normal(128, 40, (60, 80, 3)) + np.arange(80)[None, :, None], 0, 255)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(img.astype(np.uint8)).save(path, fmt, quality=92, exif=exif.tobytes())
    return img


@pytest.mark.parametrize('orientation,fmt', [(1, 'JPEG'), (6, 'JPEG'), (3, 'JPEG'),
                                             (8, 'JPEG'), (1, 'PNG')])
def test_decode_gives_what_mmcv_reads(tmp_path, orientation, fmt):
    path = str(tmp_path / 'img.JPEG')  # a PNG behind a .JPEG name, as ImageNet has
    write_photo(path, orientation, fmt)
    theirs = TRANSFORMS.build(dict(type='LoadImageFromFile'))(dict(img_path=path))['img']
    loaded = TRANSFORMS.build(dict(type='LoadImageBytes'))(dict(img_path=path))
    assert loaded['orientation'] == (orientation if fmt == 'JPEG' else 1)
    ours = decode_images([loaded['img']], [loaded['orientation']], torch.device('cpu'))[0]
    ours = ours.permute(1, 2, 0).numpy()
    assert ours.shape == theirs.shape  # (80, 60) once rotated by 90 degrees
    diff = np.abs(ours.astype(int) - theirs.astype(int))
    assert diff.max() <= 1, diff.max()  # two libjpeg builds; PNG is lossless: 0


def test_use_gpu_augment_rewrites_the_recipe():
    cfg = use_gpu_augment(Config.fromfile('configs/classification/mobilemamba_s6_8xb128_in1k.py'))
    loader = cfg.train_dataloader
    assert [t['type'] for t in loader.dataset.pipeline] == ['LoadImageBytes', 'PackInputs']
    assert 'orientation' in loader.dataset.pipeline[1]['meta_keys']
    assert loader.collate_fn == dict(type='one_storage_collate', base='pseudo_collate')
    pre = cfg.data_preprocessor
    assert pre.type == 'GPUAugmentClsDataPreprocessor' and pre.to_rgb and pre.num_classes == 1000
    assert [t['type'] for t in pre.augment] == [
        'RandomResizedCrop', 'RandomFlip', 'RandAugment', 'RandomErasing']
    assert [t['type'] for t in cfg.val_dataloader.dataset.pipeline][0] == 'LoadImageFromFile'
    with pytest.raises(ValueError, match='classification configs'):
        use_gpu_augment(Config.fromfile('configs/segmentation/fpn_mobilemamba_b4.py'))


def test_undecoded_images_outside_training_are_refused():
    pre = GPUAugmentClsDataPreprocessor(
        augment=[dict(type='RandomResizedCrop', scale=32)], num_classes=4)
    with pytest.raises(ValueError, match='only train_dataloader may use LoadImageBytes'):
        pre(dict(inputs=[torch.zeros(10, dtype=torch.uint8)]), training=False)


def test_training_batch_gets_one_hot_scores_and_its_labels(tmp_path):
    """Single labels become the one-hot scores ClsDataPreprocessor makes (``to_onehot``)."""
    from mmpretrain.structures import DataSample
    pre = GPUAugmentClsDataPreprocessor(augment=[dict(type='RandomResizedCrop', scale=32)],
                                        num_classes=5, to_onehot=True)
    load = TRANSFORMS.build(dict(type='LoadImageBytes'))
    paths = [str(tmp_path / f'{i}.JPEG') for i in range(3)]
    for path in paths:
        write_photo(path)
    labels = [4, 0, 2]
    samples = [DataSample().set_gt_label(label) for label in labels]
    out = pre(dict(inputs=[load(dict(img_path=p))['img'] for p in paths], data_samples=samples),
              training=True)
    assert out['inputs'].shape == (3, 3, 32, 32) and out['inputs'].dtype == torch.float32
    scores = torch.stack([s.gt_score for s in out['data_samples']])
    assert torch.equal(scores, torch.eye(5, dtype=scores.dtype)[labels])
    assert [s.gt_label.tolist() for s in out['data_samples']] == [[4], [0], [2]]


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


def write_smooth_photo(path: str, orientation: int) -> None:
    """A photograph's statistics: smooth colours (chroma varies slowly) with a little noise."""
    rng = np.random.default_rng(orientation)
    coarse = rng.uniform(0, 255, (6, 8, 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(coarse).resize((160, 120), Image.BICUBIC), np.float32)
    img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(img).save(path, 'JPEG', quality=90, exif=exif.tobytes())


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_nvjpeg_decode_matches_the_cpu_decoder(tmp_path):
    """nvJPEG (the hardware decoder on A100/H100-class GPUs) upsamples the chroma its own
    way, so its pixels differ from libjpeg's where colour changes fast: on an H200, by 7.2
    levels on average on pixel-level colour noise (``write_photo``), and by 2.18 (at most 14)
    on this photograph-like image. A swapped channel order or a wrong orientation would put
    them tens of levels apart."""
    paths = [str(tmp_path / f'{o}.JPEG') for o in (1, 6)]
    for path, o in zip(paths, (1, 6)):
        write_smooth_photo(path, o)
    load = TRANSFORMS.build(dict(type='LoadImageBytes'))
    loaded = [load(dict(img_path=p)) for p in paths]
    args = ([r['img'] for r in loaded], [r['orientation'] for r in loaded])
    cpu = decode_images(*args, torch.device('cpu'))
    gpu = decode_images(*args, torch.device('cuda'))
    for a, b, o in zip(cpu, gpu, (1, 6)):
        assert b.is_cuda and a.shape == b.shape == ((3, 160, 120) if o == 6 else (3, 120, 160))
        diff = (a.int() - b.cpu().int()).abs().float()
        print(f'nvJPEG against libjpeg: mean {diff.mean():.3f}, max {diff.max():.0f}')
        assert diff.mean() < 3.0


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
def test_a_training_batch_never_waits_for_the_gpu(tmp_path):
    """The S6 recipe's preprocessor (decode, augment, labels, Mixup/CutMix) under PyTorch's
    sync debug mode set to 'error': any host-device synchronisation would raise. A wait
    here would stall the host behind the previous training step every iteration."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample
    cfg = use_gpu_augment(Config.fromfile('configs/classification/mobilemamba_s6_8xb128_in1k.py'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        pre = MODELS.build(dict(cfg.data_preprocessor, batch_augments=cfg.model.train_cfg)
                           ).cuda()  # as ImageClassifier builds it, with Mixup/CutMix
    load = TRANSFORMS.build(dict(type='LoadImageBytes'))
    paths = [str(tmp_path / f'{i}.JPEG') for i in range(8)]
    for i, path in enumerate(paths):
        write_photo(path, 1 + i % 2)
    loaded = [load(dict(img_path=p)) for p in paths]
    for _ in range(4):  # one of Mixup/CutMix per batch: both come up with probability 7/8
        samples = [DataSample(metainfo=dict(orientation=r['orientation'])).set_gt_label(i)
                   for i, r in enumerate(loaded)]
        torch.cuda.set_sync_debug_mode('error')
        try:
            out = pre(dict(inputs=[r['img'] for r in loaded], data_samples=samples), True)
        finally:
            torch.cuda.set_sync_debug_mode('default')
        assert out['inputs'].shape == (8, 3, 224, 224) and out['inputs'].is_cuda
        scores = torch.stack([s.gt_score for s in out['data_samples']]).cpu()
        assert scores.shape == (8, 1000) and torch.allclose(scores.sum(1), torch.ones(8))
