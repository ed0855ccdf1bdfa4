"""Parameters and FLOPs of a MobileMamba variant or of any config's model.

    python tools/analysis/get_flops.py s6                      # classifier, 224x224
    python tools/analysis/get_flops.py b1 --shape 256 256 --fused
    python tools/analysis/get_flops.py configs/detection/retinanet_mobilemamba_b1.py \
        --shape 800 1280

One multiply-add counts as one FLOP; the selective scan counts 9*B*L*D*N + B*D*L and the
Haar transforms count as the 2x2 stride-2 convolutions they are. ``--convention paper`` (the
default) leaves out the wavelet-domain depthwise convs, as the published count does, and so
reproduces the paper's FLOPs of every variant (S6: 652.3M); ``--convention full`` keeps them
(S6: 654.8M). docs/architecture.md, "FLOP counting", has the per-variant numbers.
Configs are measured through ``model(x, mode='tensor')``.
"""
import argparse

import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from torch import nn

import mmmobilemamba  # noqa: F401  (registers our modules)
from mmmobilemamba.analysis import CONVENTIONS, count_flops
from mmmobilemamba.analysis.det_flops import DetectorFlopWrapper, is_two_stage
from mmmobilemamba.models import MobileMamba
from mmmobilemamba.models.utils import fuse_modules

RESOLUTION = MobileMamba.arch_resolution


class TensorMode(nn.Module):
    """Call an OpenMMLab model the way a plain module is called, for tracing."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        return self.model(x, mode='tensor')


def build(target: str, num_classes: int = 1000) -> nn.Module:
    if target.lower() in MobileMamba.arch_zoo:
        init_default_scope('mmpretrain')
        backbone = MobileMamba(target)
        return MODELS.build(dict(
            type='ImageClassifier', backbone=dict(type='MobileMamba', arch=target),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='BNLinearClsHead', num_classes=num_classes,
                      in_channels=backbone.embed_dims[-1])))
    cfg = Config.fromfile(target)
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    return MODELS.build(cfg.model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog=__doc__.split('\n\n', 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('target', help=f'a variant ({", ".join(RESOLUTION)}) or a config file')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help="input size (default: the variant's resolution)")
    parser.add_argument('--fused', action='store_true', help='count the BN-fused model')
    parser.add_argument('--convention', choices=CONVENTIONS, default='paper',
                        help="'paper': as the published FLOPs (default); 'full': also "
                        'the wavelet-domain depthwise convs')
    args = parser.parse_args()
    if args.shape is None:
        if args.target.lower() not in RESOLUTION:
            parser.error('--shape H W is required for a config')
        args.shape = [RESOLUTION[args.target.lower()]] * 2
    model = build(args.target).eval()
    if args.fused:
        fuse_modules(model)
    wrapped = DetectorFlopWrapper(model) if is_two_stage(model) else TensorMode(model)
    flops, params = count_flops(wrapped, (torch.randn(1, 3, *args.shape), ), args.convention)
    aux = getattr(model, 'auxiliary_head', None)
    if aux is not None:  # training-only head: not counted, as mmseg's get_flops does
        params -= sum(p.numel() for p in aux.parameters())
    print(f'target: {args.target}\ninput: 1x3x{args.shape[0]}x{args.shape[1]}\n'
          f'params: {params:,} ({params / 1e6:.2f}M)\nflops: {flops:,} ({flops / 1e9:.3f}G)\n'
          f'convention: {args.convention}')


if __name__ == '__main__':
    main()
