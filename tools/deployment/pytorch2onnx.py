"""Export a MobileMamba classifier (config + checkpoint) or a bare backbone (--arch) to ONNX,
then check the file with onnxruntime against PyTorch on fresh random inputs.

    python tools/deployment/pytorch2onnx.py configs/classification/mobilemamba_s6_8xb128_in1k.py \
        --checkpoint s6.pth --output-file s6.onnx
    python tools/deployment/pytorch2onnx.py --arch t2 --shape 192 192 --dynamic-hw

The graph takes normalised images (N, 3, H, W) with a dynamic batch; ``--dynamic-hw`` makes
H and W dynamic too. The scan exports as plain ONNX ops, so any runtime loads the file.
See docs/deployment.md.
"""
import argparse
from pathlib import Path
from typing import List, Optional

import mmmobilemamba  # noqa: F401  (registers our modules)
from mmmobilemamba.deployment import default_img_size, export_onnx, load_for_export, verify_onnx
from mmmobilemamba.models import MobileMamba

RESOLUTIONS = ', '.join(f'{k} {v}' for k, v in MobileMamba.arch_resolution.items())


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='Export MobileMamba to ONNX and verify it')
    p.add_argument('config', nargs='?', help='classification config (omit with --arch)')
    p.add_argument('--arch', help='export a bare backbone of this variant instead')
    p.add_argument('--checkpoint', help='weights (mmpretrain, official or backbone layout)')
    p.add_argument('--output-file', default=None, help='default: <config or arch>.onnx')
    p.add_argument('--shape', type=int, nargs=2, default=None, metavar=('H', 'W'),
                   help=f"export input size; default: the variant's resolution ({RESOLUTIONS}; "
                   '224 for a custom arch)')
    p.add_argument('--dynamic-hw', action='store_true', help='dynamic height and width too')
    p.add_argument('--opset', type=int, default=17)
    p.add_argument('--verify-batch', type=int, default=3,
                   help='batch of the onnxruntime check (differs from the export batch 1)')
    p.add_argument('--no-verify', action='store_true', help='skip the onnxruntime check')
    p.add_argument('--tolerance', type=float, default=1e-4,
                   help='largest relative error the check accepts')
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> float:
    args = parse_args(argv)
    model = load_for_export(args.config, args.checkpoint, args.arch)
    name = args.arch or Path(args.config).stem
    out = args.output_file or f'{name}.onnx'
    h, w = args.shape or default_img_size(model)
    names = export_onnx(model, out, (h, w), args.dynamic_hw, args.opset)
    print(f'exported {out}: input (batch, 3, {"H, W" if args.dynamic_hw else f"{h}, {w}"}) '
          f'-> {", ".join(names)}, opset {args.opset}')
    if args.no_verify:
        return float('nan')
    shapes = [(args.verify_batch, 3, h, w)]
    if args.dynamic_hw:
        shapes.append((1, 3, h + 32, w + 96))
    errors = verify_onnx(out, model, shapes)
    for shape, err in errors.items():
        print(f'onnxruntime vs PyTorch at {shape}: max relative error {err:.2e}')
    worst = max(errors.values())
    if worst > args.tolerance:
        raise SystemExit(f'ONNX check failed: relative error {worst:.2e} > {args.tolerance}')
    return worst


if __name__ == '__main__':
    main()
