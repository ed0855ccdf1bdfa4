"""Full-size training and test speed of the detection and segmentation configs, each beside
the task library's own everyday alternative (ResNet-50; MobileNetV2 for SSDLite) built the
same way in the same process.

Each model is built from its config with random weights, its optimizer wrapper from the
config's ``optim_wrapper`` (AMP: ``AmpOptimWrapper`` in the given dtype, as
``tools/train.py --amp`` makes it), and runs ``model.train_step`` / ``model.test_step`` on
one synthetic batch at the config's real input size and per-GPU batch: the Runner's step
without the data loader. Reported: s/iter, img/s and peak memory of training, img/s of
testing (``test_step`` under ``no_grad``, autocast in AMP).

    python benchmarks/downstream_timing.py [--models retinanet ...] [--precisions fp32 bf16]
        [--iters 10] [--json timing.json]

``--compile-backbone`` builds our models with ``model.backbone.compile_cfg=dict(dynamic=True)``
(the baselines stay eager), and ``--vary-sizes`` gives the detectors a different padded
batch size every iteration, as mmdet's keep-ratio resize does (the warm-up visits each
once); the table then says how many graphs TorchDynamo compiled.

``--device cpu --scale 0.1 --batch 1`` runs the same code small on a CPU (a smoke test).
"""
import argparse
import itertools
import json
from typing import Dict, List, NamedTuple, Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, DefaultScope
from mmengine.structures import PixelData

import mmmobilemamba  # noqa: F401  (registers our modules)
from mmmobilemamba.analysis.timing import cpu_time_ms, gpu_time_ms


class Case(NamedTuple):
    ours: str             # our config
    baseline: str         # the task library's config we compare against
    size: Tuple[int, int]  # input (H, W)


CASES: Dict[str, Case] = {
    'retinanet': Case('configs/detection/retinanet_mobilemamba_b1.py',
                      'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', (800, 1333)),
    'mask-rcnn': Case('configs/detection/mask-rcnn_mobilemamba_b1.py',
                      'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', (800, 1333)),
    'ssdlite': Case('configs/detection/ssdlite_mobilemamba_b1.py',
                    'mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py', (320, 320)),
    'ssdlite-512': Case('configs/detection/ssdlite_mobilemamba_b1_512.py',
                        'mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py', (512, 512)),
    'deeplabv3': Case('configs/segmentation/deeplabv3_mobilemamba_b4.py',
                      'mmseg::deeplabv3/deeplabv3_r50-d8_4xb4-80k_ade20k-512x512.py', (512, 512)),
    'fpn': Case('configs/segmentation/fpn_mobilemamba_b4.py',
                'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py', (512, 512)),
    'pspnet': Case('configs/segmentation/pspnet_mobilemamba_b4.py',
                   'mmseg::pspnet/pspnet_r50-d8_4xb4-80k_ade20k-512x512.py', (512, 512)),
}
DTYPES = {'fp32': None, 'bf16': 'bfloat16', 'fp16': 'float16'}
# Padded batch shapes from the (1333, 800) keep-ratio resize of COCO-like aspect ratios,
# as fractions of the case's size: each iteration of --vary-sizes takes the next one.
VARIED = [(1.0, 1.0), (1.0, 0.9), (0.92, 1.0), (1.0, 0.8), (0.84, 1.0), (1.0, 0.75)]


def load(path: str, compile_backbone: bool = False) -> Config:
    """The config without pretrained weights (no downloads; random init for both sides).
    Where mmcv 2.1 cannot run a baseline, it gets the fix that ours has: FixedSSDHead
    (mmdet 3.3's SSDHead cannot predict), FP32FocalLoss and torchvision's RoIAlign (mmcv's
    CUDA focal loss and RoIAlign have no bfloat16 kernels)."""
    cfg = get_config(path) if '::' in path else Config.fromfile(path)
    cfg.model.pop('pretrained', None)
    if cfg.model.get('bbox_head', {}).get('type') == 'SSDHead':
        cfg.model.bbox_head.type = 'FixedSSDHead'
    if cfg.model.get('bbox_head', {}).get('loss_cls', {}).get('type') == 'FocalLoss':
        cfg.model.bbox_head.loss_cls.type = 'FP32FocalLoss'
    for extractor in ('bbox_roi_extractor', 'mask_roi_extractor'):
        if extractor in cfg.model.get('roi_head', {}):
            cfg.model.roi_head[extractor].roi_layer.use_torchvision = True
    backbone = cfg.model.backbone
    if backbone.get('init_cfg') is not None:
        backbone.init_cfg = None
    if compile_backbone and backbone.type == 'MobileMamba':
        backbone.compile_cfg = dict(dynamic=True)
    return cfg


def synthetic_batch(cfg: Config, size: Tuple[int, int], batch: int, seed: int = 0) -> dict:
    """``batch`` random images of ``size`` with task annotations, as the data loader gives
    them to ``train_step`` (uint8 CHW tensors and data samples)."""
    torch.manual_seed(seed)
    h, w = size
    if cfg.default_scope == 'mmdet':
        from mmdet.testing import demo_mm_inputs
        with_mask = 'mask_head' in cfg.model.get('roi_head', {})
        return demo_mm_inputs(batch, [(3, h, w)] * batch, num_items=[8] * batch,
                              num_classes=80, with_mask=with_mask)
    from mmseg.structures import SegDataSample
    samples = []
    for _ in range(batch):
        s = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                                        scale_factor=(1.0, 1.0), flip=False))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, h, w)))
        samples.append(s)
    return dict(inputs=[torch.randint(0, 256, (3, h, w), dtype=torch.uint8)
                        for _ in range(batch)], data_samples=samples)


def seconds(fn, warmup: int, iters: int, device: str) -> float:
    """Seconds per call of ``iters`` back-to-back calls after ``warmup`` ones."""
    if device == 'cuda':
        return gpu_time_ms(fn, warmup, iters, repeats=1)[0] / 1e3
    return sum(cpu_time_ms(fn, warmup, iters)) / iters / 1e3


def measure(path: str, sizes: List[Tuple[int, int]], batch: int, precision: str,
            warmup: int, iters: int, device: str = 'cuda', compile_backbone: bool = False) -> dict:
    """Train and test speed on batches of ``sizes`` in turn (warm-up: each at least once)."""
    cfg = load(path, compile_backbone)
    dtype = DTYPES[precision]
    cuda = device == 'cuda'
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model).to(device)
        wrapper_cfg = cfg.optim_wrapper.copy()
        if dtype:
            wrapper_cfg.update(type='AmpOptimWrapper', dtype=dtype, loss_scale='dynamic')
        optim_wrapper = build_optim_wrapper(model, wrapper_cfg)
        batches = itertools.cycle([synthetic_batch(cfg, size, batch) for size in sizes])
        warmup = max(warmup, len(sizes))
        graphs = torch._dynamo.utils.counters['stats']['unique_graphs']
        model.train()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        train_s = seconds(lambda: model.train_step(next(batches), optim_wrapper), warmup,
                          iters, device)
        train_mem = torch.cuda.max_memory_allocated() / 2**30 if cuda else float('nan')
        model.eval()

        def test():
            with torch.no_grad(), torch.autocast(device, dtype=getattr(torch, dtype or 'float32'),
                                                 enabled=dtype is not None):
                model.test_step(next(batches))

        test_s = seconds(test, warmup, iters, device)
        graphs = torch._dynamo.utils.counters['stats']['unique_graphs'] - graphs
    del model, optim_wrapper
    if cuda:
        torch.cuda.empty_cache()
    return dict(config=path, precision=precision, batch=batch, sizes=[list(s) for s in sizes],
                compiled_backbone=cfg.model.backbone.get('compile_cfg') is not None,
                dynamo_graphs=graphs, train_s_iter=train_s, train_img_s=batch / train_s,
                train_mem_gib=train_mem, test_img_s=batch / test_s)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', nargs='+', choices=list(CASES), default=list(CASES))
    parser.add_argument('--precisions', nargs='+', choices=list(DTYPES),
                        default=['fp32', 'bf16'])
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--json', help='append one JSON line per measurement here')
    parser.add_argument('--device', default='cuda', choices=['cuda', 'cpu'])
    parser.add_argument('--scale', type=float, default=1.0,
                        help='input size factor (smoke tests; the table is at 1.0)')
    parser.add_argument('--batch', type=int, help='batch size (default: the config\'s)')
    parser.add_argument('--compile-backbone', action='store_true',
                        help='our models with compile_cfg=dict(dynamic=True) on the backbone')
    parser.add_argument('--vary-sizes', action='store_true',
                        help=f'detectors: cycle through {len(VARIED)} padded batch sizes')
    parser.add_argument('--no-baseline', action='store_true', help='time our models only')
    args = parser.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('downstream_timing.py: no CUDA GPU is visible; --device cpu runs '
                         'the smoke version.')
    card = torch.cuda.get_device_name() if args.device == 'cuda' else 'CPU'
    print(f'# {card}, torch {torch.__version__}, scale {args.scale}')
    print('| model | backbone | precision | batch | sizes | train s/iter | train img/s | '
          'train mem GiB | test img/s | graphs |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for name in args.models:
        case = CASES[name]
        ours = Config.fromfile(case.ours)
        batch = args.batch or ours.train_dataloader.batch_size
        varied = args.vary_sizes and ours.default_scope == 'mmdet'
        sizes = [tuple(max(32, round(s * f * args.scale / 32) * 32)
                       for s, f in zip(case.size, factors))
                 for factors in (VARIED if varied else VARIED[:1])]
        sides = [('ours, compiled' if args.compile_backbone else 'ours', case.ours)]
        if not args.no_baseline:
            sides.append(('baseline', case.baseline))
        for precision in args.precisions:
            for label, path in sides:
                r = measure(path, sizes, batch, precision, args.warmup, args.iters, args.device,
                            args.compile_backbone)
                r.update(model=name, side=label)
                print(f"| {name} | {label} | {precision} | {batch} | {len(sizes)} | "
                      f"{r['train_s_iter']:.3f} | {r['train_img_s']:.1f} | "
                      f"{r['train_mem_gib']:.2f} | {r['test_img_s']:.1f} | "
                      f"{r['dynamo_graphs']} |", flush=True)
                if args.json:
                    with open(args.json, 'a') as f:
                        f.write(json.dumps(r) + '\n')


if __name__ == '__main__':
    main()
