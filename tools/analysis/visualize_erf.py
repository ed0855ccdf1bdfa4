"""Effective receptive field (ERF) maps of a MobileMamba backbone, per stage (paper Fig. 1/6).

Method (the image-averaged input gradient of Luo et al. 2016, as in RepLKNet's ERF tool):
for every input image, take the stage's output feature map, sum its central spatial
position over the channels, back-propagate that scalar to the input image, and add the
absolute input gradient, summed over the three input channels, to a running total. The
total over N images (N times their average) is the raw ERF, saved as
``erf_stage{i}.npy``; the heat map shows ``log10(raw + 1)`` divided by its maximum, so 1
marks the pixels that move the centre most.

Stages follow the backbone's ``out_indices``: 0 = patch_embed (stride 16), 1..3 =
blocks1..3 (strides 16, 32, 64). The backbone is built from the config's
``model.backbone`` through the MMEngine ``MODELS`` registry; a checkpoint (official,
mmpretrain, mmdet or mmseg) supplies its ``backbone`` weights, and without one the maps show
the randomly initialised network, which every plot title says. As built, the last
BatchNorm of every residual branch starts at weight 0 (each block is then an identity), so a
random-init map of blocks1 equals that of patch_embed; ``--bn-weight 1`` sets every BN
weight to 1 to show what the untrained wiring (WTE-Mamba, multi-kernel convs) reaches.

    # toy images from `make demo` (or any folder of images), S6 at its 224x224
    python tools/analysis/visualize_erf.py configs/classification/mobilemamba_s6_8xb128_in1k.py \
        --images data/toy/imagenet/val --num-images 32 --out-dir work_dirs/erf_s6 --grid \
        --bn-weight 1
    # a trained model
    python tools/analysis/visualize_erf.py configs/classification/mobilemamba_s6_8xb128_in1k.py \
        checkpoints/mobilemamba_s6_in1k.pth --images /data/imagenet/val --num-images 50

Writes ``erf_stage{i}.png`` and ``erf_stage{i}.npy`` for each stage (and ``erf_grid.png``,
all stages side by side, with ``--grid``), and prints for each stage the side of the
smallest centred square holding 50% of the raw contribution.
"""
import argparse
import glob
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import MODELS
from PIL import Image
from torch.nn.modules.batchnorm import _BatchNorm

import mmmobilemamba  # noqa: F401  (registers MobileMamba)
from mmmobilemamba.models import MobileMamba
from mmmobilemamba.utils import load_backbone_checkpoint

STAGE_NAMES = ('patch_embed, stride 16', 'blocks1, stride 16', 'blocks2, stride 32',
               'blocks3, stride 64')
IMAGENET_MEAN = (123.675, 116.28, 103.53)  # RGB, the configs' data_preprocessor values
IMAGENET_STD = (58.395, 57.12, 57.375)
IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='any mmmobilemamba config (its model.backbone is used)')
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='checkpoint for the backbone; random init when omitted')
    parser.add_argument('--images', help='folder of images (searched recursively); '
                        'random noise images when omitted')
    parser.add_argument('--num-images', type=int, default=50, help='images to average over')
    parser.add_argument('--img-size', type=int, help='square input size (default: the '
                        'arch\'s resolution, e.g. 224 for s6, 256 for b1)')
    parser.add_argument('--stages', type=int, nargs='+', default=[0, 1, 2, 3],
                        choices=[0, 1, 2, 3], help='backbone stages (out_indices) to map')
    parser.add_argument('--out-dir', help='output folder (default: work_dirs/erf/<config>)')
    parser.add_argument('--grid', action='store_true',
                        help='also save erf_grid.png with all stages side by side')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random init/images')
    parser.add_argument('--bn-weight', type=float, default=None,
                        help='random init only: set every BatchNorm weight to this value. '
                        'As built, the last BN of each residual branch starts at 0, so every '
                        'block is an identity and the random-init ERF is that of patch_embed; '
                        '1.0 shows what the untrained wiring reaches')
    args = parser.parse_args(argv)
    args.stages = sorted(set(args.stages))
    if args.num_images < 1:
        parser.error(f'--num-images must be >= 1, got {args.num_images}')
    if args.bn_weight is not None and args.checkpoint:
        parser.error('--bn-weight changes the random init; it cannot be used with a checkpoint')
    if args.img_size is not None and args.img_size < 64:
        parser.error(f'--img-size must be >= 64 (the backbone\'s total stride), '
                     f'got {args.img_size}')
    return args


def build_backbone(cfg: Config, checkpoint: Optional[str], stages: Sequence[int],
                   bn_weight: Optional[float] = None) -> torch.nn.Module:
    """The config's backbone with every requested stage as an output, in eval mode."""
    if 'model' not in cfg or 'backbone' not in cfg.model:
        raise KeyError(f'{cfg.filename} has no model.backbone to visualise.')
    bb_cfg = cfg.model.backbone.copy()
    if bb_cfg.get('type') != 'MobileMamba':
        raise ValueError(f'model.backbone.type is {bb_cfg.get("type")!r}; this tool maps the '
                         'stages of a MobileMamba backbone.')
    # weights come from `checkpoint` only: a config's Pretrained path may not exist here
    bb_cfg.update(out_indices=tuple(sorted(stages)), init_cfg=None, drop_path_rate=0.0)
    # the layers initialise themselves in their constructors (init_weights adds nothing)
    backbone = MODELS.build(bb_cfg)
    if checkpoint is not None:
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'Checkpoint {checkpoint} does not exist.')
        load_backbone_checkpoint(backbone, checkpoint)
    elif bn_weight is not None:
        for m in backbone.modules():
            if isinstance(m, _BatchNorm):
                torch.nn.init.constant_(m.weight, bn_weight)
    return backbone.eval()


def default_img_size(cfg: Config) -> int:
    arch = cfg.model.backbone.get('arch', 's6')
    return MobileMamba.arch_resolution.get(arch.lower(), 224) if isinstance(arch, str) else 224


def image_files(folder: str, num: int) -> List[str]:
    if not osp.isdir(folder):
        raise FileNotFoundError(f'--images {folder} is not a folder; give a folder of images '
                                '(e.g. data/toy/imagenet/val) or omit it for random images.')
    files = sorted(p for p in glob.glob(osp.join(folder, '**', '*'), recursive=True)
                   if p.lower().endswith(IMAGE_EXTS))
    if not files:
        raise FileNotFoundError(f'No {"/".join(IMAGE_EXTS)} images under {folder}.')
    return files[:num]


def normalise_pixels(x: torch.Tensor) -> torch.Tensor:
    """RGB pixels in [0, 255], (..., 3, H, W) -> the configs' normalised inputs."""
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    return (x - mean) / std


def load_image(path: str, size: int) -> torch.Tensor:
    """RGB, resized to size x size (bicubic), normalised: (3, size, size)."""
    img = Image.open(path).convert('RGB').resize((size, size), Image.BICUBIC)
    return normalise_pixels(torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1))


def input_batches(files: Optional[List[str]], num: int, size: int, seed: int,
                  batch_size: int = 4):
    """Yield normalised input batches: the files, or ``num`` uniform-noise images."""
    if files is not None:
        for i in range(0, len(files), batch_size):
            yield torch.stack([load_image(f, size) for f in files[i:i + batch_size]])
        return
    gen = torch.Generator().manual_seed(seed)
    for i in range(0, num, batch_size):
        n = min(batch_size, num - i)
        yield normalise_pixels(torch.rand(n, 3, size, size, generator=gen) * 255)


def accumulate_erf(backbone: torch.nn.Module, batches, stages: Sequence[int]
                   ) -> Dict[int, np.ndarray]:
    """Raw ERF per stage: sum over images of |d(centre of the stage output)/d input|.

    Batching changes nothing: in eval mode the samples do not interact, so the gradient of
    the batch sum of the centres w.r.t. one image is that image's own gradient, and the
    absolute value is taken per image before summing.
    """
    stages = sorted(stages)
    total: Dict[int, Optional[torch.Tensor]] = {s: None for s in stages}
    for x in batches:
        x = x.clone().requires_grad_(True)
        outs = backbone(x)
        for stage, feat in zip(stages, outs):
            h, w = feat.shape[2:]
            centre = feat[:, :, h // 2, w // 2].sum()
            grad, = torch.autograd.grad(centre, x, retain_graph=stage != stages[-1])
            contrib = grad.abs().sum(1)  # (N, H, W)
            bad = ~torch.isfinite(contrib).flatten(1).all(1)
            if bad.any():
                raise FloatingPointError(f'stage {stage}: non-finite input gradient for '
                                         f'{int(bad.sum())} image(s); check the checkpoint.')
            contrib = contrib.sum(0).double()
            total[stage] = contrib if total[stage] is None else total[stage] + contrib
    return {s: t.numpy() for s, t in total.items()}


def normalise(raw: np.ndarray) -> np.ndarray:
    """``log10(raw + 1)`` scaled to a maximum of 1 (the heat map's values)."""
    m = np.log10(raw + 1)
    return m / m.max() if m.max() > 0 else m


def centre_square_side(raw: np.ndarray, fraction: float = 0.5) -> int:
    """Side (pixels) of the smallest square around the centre holding ``fraction`` of the
    total contribution: a scalar measure of how wide the ERF is."""
    h, w = raw.shape
    cy, cx, total = h // 2, w // 2, raw.sum()
    for r in range(max(h, w)):
        if raw[max(cy - r, 0):cy + r + 1, max(cx - r, 0):cx + r + 1].sum() >= fraction * total:
            return 2 * r + 1
    return max(h, w)


def describe_weights(checkpoint: Optional[str], bn_weight: Optional[float]) -> str:
    """Where the weights come from, for the plot titles."""
    if checkpoint:
        return f'checkpoint {osp.basename(checkpoint)}'
    if bn_weight is not None:
        return f'random init (no checkpoint), BN weights {bn_weight:g}'
    return 'random init (no checkpoint)'


def draw(maps: Dict[int, np.ndarray], out_dir: str, model_name: str, source: str,
         n_images: int, grid: bool) -> List[str]:
    """One PNG per stage (plus the grid); returns the written paths."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    written = []
    subtitle = f'{source}, {n_images} images'
    for stage, raw in maps.items():
        fig, ax = plt.subplots(figsize=(4.2, 4.0), dpi=100)
        im = ax.imshow(normalise(raw), cmap='RdYlGn', vmin=0, vmax=1)
        ax.set_axis_off()
        ax.set_title(f'{model_name} stage {stage} ({STAGE_NAMES[stage]})\n{subtitle}',
                     fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        path = osp.join(out_dir, f'erf_stage{stage}.png')
        fig.savefig(path, bbox_inches='tight')
        plt.close(fig)
        written.append(path)
    if grid:
        fig, axes = plt.subplots(1, len(maps), figsize=(2.6 * len(maps) + 0.6, 3.0), dpi=90,
                                 squeeze=False)
        for ax, (stage, raw) in zip(axes[0], maps.items()):
            im = ax.imshow(normalise(raw), cmap='RdYlGn', vmin=0, vmax=1)
            ax.set_axis_off()
            ax.set_title(f'stage {stage}: {STAGE_NAMES[stage]}', fontsize=9)
        fig.colorbar(im, ax=list(axes[0]), fraction=0.015, pad=0.01)
        fig.suptitle(f'ERF of {model_name}, {subtitle}', fontsize=10)
        path = osp.join(out_dir, 'erf_grid.png')
        fig.savefig(path, bbox_inches='tight')
        plt.close(fig)
        written.append(path)
    return written


def main(argv: Optional[Sequence[str]] = None) -> Dict[int, np.ndarray]:
    """Run the tool; returns the raw maps by stage (what the .npy files hold)."""
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    files = image_files(args.images, args.num_images) if args.images else None
    torch.manual_seed(args.seed)
    backbone = build_backbone(cfg, args.checkpoint, args.stages, args.bn_weight)
    size = args.img_size or default_img_size(cfg)
    n_images = len(files) if files is not None else args.num_images
    out_dir = args.out_dir or osp.join('work_dirs', 'erf',
                                       osp.splitext(osp.basename(args.config))[0])
    os.makedirs(out_dir, exist_ok=True)
    arch = cfg.model.backbone.get('arch', 's6')
    model_name = f'MobileMamba-{arch.upper()}' if isinstance(arch, str) else 'MobileMamba'
    source = describe_weights(args.checkpoint, args.bn_weight)
    print(f'{model_name} at {size}x{size}, {source}, {n_images} '
          f'{"images from " + args.images if files is not None else "random noise images"}',
          flush=True)

    maps = accumulate_erf(backbone, input_batches(files, n_images, size, args.seed),
                          args.stages)
    for stage, raw in maps.items():
        np.save(osp.join(out_dir, f'erf_stage{stage}.npy'), raw)
        side = centre_square_side(raw, 0.5)
        print(f'stage {stage} ({STAGE_NAMES[stage]}): 50% of the contribution lies in the '
              f'central {side}x{side} px ({side * side / raw.size:.1%} of the image)')
    for path in draw(maps, out_dir, model_name, source, n_images, args.grid):
        print('wrote', path)
    return maps


if __name__ == '__main__':
    main(sys.argv[1:])
