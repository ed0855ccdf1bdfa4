"""Convert a released MobileMamba classification checkpoint to an mmpretrain checkpoint.

Accepts flat state_dicts and the reference trainer's wrapped files (``net``, or ``net_E``
for EMA weights with ``--ema``); the distillation head is kept when present.

    python tools/model_converters/mobilemamba_official_to_mm.py official.pth mm.pth [--ema]
"""
import argparse
import os
import os.path as osp

import torch

from mmmobilemamba.models.utils import official_to_mmpretrain, unwrap_state_dict


def convert(src: str, dst: str, use_ema: bool = False) -> dict:
    """Write ``dst`` as ``{'state_dict': ..., 'meta': ...}`` and return that dict."""
    ckpt = torch.load(src, map_location='cpu', weights_only=True)
    state = unwrap_state_dict(ckpt, use_ema)
    if 'patch_embed.0.c.weight' not in state and 'patch_embed.0.weight' not in state:
        raise KeyError(f'{src} does not look like an official MobileMamba checkpoint: '
                       f'no patch_embed.0 weights among {len(state)} keys.')
    out = dict(state_dict=official_to_mmpretrain(state),
               meta=dict(converted_from=osp.abspath(src), ema=use_ema))
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save(out, dst)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='official checkpoint (.pth)')
    parser.add_argument('dst', help='output mmpretrain checkpoint (.pth)')
    parser.add_argument('--ema', action='store_true', help='take the EMA weights (net_E)')
    args = parser.parse_args()
    out = convert(args.src, args.dst, args.ema)
    print(f'wrote {args.dst}: {len(out["state_dict"])} tensors')


if __name__ == '__main__':
    main()
