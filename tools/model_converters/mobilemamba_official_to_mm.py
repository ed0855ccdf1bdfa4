"""Convert a released MobileMamba classification checkpoint to an mmpretrain checkpoint.

Accepts flat state_dicts and the reference trainer's wrapped files (``net``, or ``net_E``
for EMA weights with ``--ema``); the distillation head is kept when present. With
``--to-official`` it goes the other way: an mmpretrain checkpoint of ours (e.g. a
``work_dirs/.../epoch_N.pth``) becomes a ``{'model': state_dict}`` file in the official layout.

    python tools/model_converters/mobilemamba_official_to_mm.py official.pth mm.pth [--ema]
    python tools/model_converters/mobilemamba_official_to_mm.py mm.pth official.pth --to-official
"""
import argparse

from mmmobilemamba.utils import convert_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='checkpoint to convert (.pth)')
    parser.add_argument('dst', help='output checkpoint (.pth)')
    parser.add_argument('--ema', action='store_true', help='take the EMA weights (net_E)')
    parser.add_argument('--to-official', action='store_true',
                        help='convert an mmpretrain checkpoint to the official layout')
    args = parser.parse_args()
    state = convert_checkpoint(args.src, args.dst, args.ema, args.to_official)
    print(f'wrote {args.dst}: {len(state)} tensors')


if __name__ == '__main__':
    main()
