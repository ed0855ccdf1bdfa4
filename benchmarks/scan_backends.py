"""The scan backends against each other through ``selective_scan``, as SS2D calls it: forward
ms and forward+backward ms at S6's stage sizes (batch 256 at 224) and a RetinaNet feature map
(batch 2 at 800x1344), float32 inputs. A backend that cannot run here is reported, not timed.

    python benchmarks/scan_backends.py [--backends triton mamba_ssm] [--json out.json]
    python benchmarks/scan_backends.py --device cpu --backends chunked --scale 0.01  # a smoke test
"""
import argparse
import json
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch

from mmmobilemamba.analysis.timing import cpu_time_ms, gpu_time_ms
from mmmobilemamba.ops.selective_scan import selective_scan

# (label, batch, d_inner, L), as in benchmarks/scan_bandwidth.py
SIZES = [('s6-stage1', 256, 320, 196), ('s6-stage2', 256, 544, 49),
         ('s6-stage3', 256, 544, 16), ('det-800x1344', 2, 320, 100 * 168)]


def median_ms(fn: Callable[[], object], device: str, warmup: int = 5, reps: int = 20) -> float:
    times = gpu_time_ms(fn, warmup, 1, reps) if device == 'cuda' else cpu_time_ms(fn, warmup, reps)
    return sorted(times)[len(times) // 2]


def inputs(bt: int, d: int, length: int, device: str) -> Dict[str, torch.Tensor]:
    g = torch.Generator(device).manual_seed(0)

    def r(*shape):
        return torch.randn(*shape, generator=g, device=device)

    return dict(u=r(bt, d, length), delta=0.5 * r(bt, 2, d, length), A=-torch.exp(0.5 * r(2, d)),
                B=r(bt, 2, length), C=r(bt, 2, length), D=r(2, d), delta_bias=0.3 * r(2, d))


def time_backend(backend: str, x: Dict[str, torch.Tensor], device: str) -> dict:
    leaves = {k: v.clone().requires_grad_() for k, v in x.items()}

    def forward():
        with torch.no_grad():
            selective_scan(**x, backend=backend)

    def forward_backward():
        selective_scan(**leaves, backend=backend).sum().backward()

    try:
        return dict(fwd_ms=median_ms(forward, device),
                    fwd_bwd_ms=median_ms(forward_backward, device))
    except Exception as err:  # report a backend that cannot run here, keep timing the others
        return dict(error=f'{type(err).__name__}: {err}'.splitlines()[0][:200])


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--backends', nargs='+', default=['triton', 'mamba_ssm'])
    p.add_argument('--device', default='cuda', choices=['cuda', 'cpu'])
    p.add_argument('--sizes', nargs='+', choices=[s[0] for s in SIZES],
                   default=[s[0] for s in SIZES])
    p.add_argument('--scale', type=float, default=1.0, help='batch factor (smoke tests)')
    p.add_argument('--json', type=Path)
    args = p.parse_args(argv)
    card = torch.cuda.get_device_name() if args.device == 'cuda' else 'CPU'
    print(f'# {card}, torch {torch.__version__}')
    print('| size | batch | d | L | backend | fwd ms | fwd+bwd ms |')
    print('|---|---|---|---|---|---|---|')
    rows = []
    for label, bt, d, length in (s for s in SIZES if s[0] in args.sizes):
        bt = max(1, round(bt * args.scale))
        x = inputs(bt, d, length, args.device)
        for backend in args.backends:
            r = dict(size=label, batch=bt, d=d, L=length, backend=backend,
                     **time_backend(backend, x, args.device))
            rows.append(r)
            cells = (f"{r['fwd_ms']:.3f} | {r['fwd_bwd_ms']:.3f}" if 'error' not in r
                     else f"failed: {r['error']} | -")
            print(f'| {label} | {bt} | {d} | {length} | {backend} | {cells} |', flush=True)
    if args.json:
        args.json.write_text(json.dumps(dict(card=card, rows=rows), indent=1))


if __name__ == '__main__':
    main()
