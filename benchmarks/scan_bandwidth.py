"""The Triton scan kernels against the card's copy bandwidth, plus a tile-size sweep.

For each size: the fewest bytes the op must move (every input read once, every output
written once), the median kernel time (``triton.testing.do_bench``), and the achieved
fraction of the device-to-device copy bandwidth measured in the same process (bytes read
plus bytes written). The sweep times the tile/warp settings of ``scan_triton`` so that
its defaults can be chosen from data.

    python benchmarks/scan_bandwidth.py [--sweep] [--exact-softplus] [--json out.json]
"""
import argparse
import json
from pathlib import Path

import torch

from mmmobilemamba.ops import scan_triton as st
from mmmobilemamba.ops.selective_scan import BACKENDS

# (label, batch, d_inner, L): S6 at 224 (stages 1..3), a detection feature map.
SIZES = [('s6-stage1', 256, 320, 196), ('s6-stage2', 256, 544, 49),
         ('s6-stage3', 256, 544, 16), ('det-800x1344', 2, 320, 100 * 168)]


def bench_ms(fn) -> float:
    import triton.testing
    return triton.testing.do_bench(fn, warmup=25, rep=200, return_mode='median')


def copy_bandwidth() -> float:
    """Bytes/s of a 2 GiB device-to-device copy, counting read + write."""
    x = torch.randn(2 ** 29, device='cuda')
    y = torch.empty_like(x)
    return 2 * x.nbytes / (bench_ms(lambda: y.copy_(x)) * 1e-3)


def make_inputs(bt, d, length, dtype):
    r = lambda *s: torch.randn(*s, device='cuda')  # noqa: E731
    return dict(u=r(bt, d, length).to(dtype), delta=(0.5 * r(bt, 2, d, length)).to(dtype),
                A=-torch.exp(0.5 * r(2, d)), B=r(bt, 2, length).to(dtype),
                C=r(bt, 2, length).to(dtype), D=r(2, d), delta_bias=0.3 * r(2, d))


def nbytes(*ts) -> int:
    return sum(t.numel() * t.element_size() for t in ts)


def measure(bt, d, length, dtype, bw, fwd=True, bwd=True):
    x = make_inputs(bt, d, length, dtype)
    y, hs = st._scan_fwd_impl(**x)
    out = {}
    if fwd:
        ms = bench_ms(lambda: st._scan_fwd_impl(**x))
        n = nbytes(*x.values(), y, hs)
        out.update(fwd_ms=ms, fwd_MB=n / 1e6, fwd_frac=n / (ms * 1e-3) / bw)
    if bwd:
        dy = torch.randn_like(y)
        grads = st._scan_bwd_impl(dy, *x.values(), hs)
        ms = bench_ms(lambda: st._scan_bwd_impl(dy, *x.values(), hs))
        n = nbytes(dy, *x.values(), hs, *grads)
        out.update(bwd_ms=ms, bwd_MB=n / 1e6, bwd_frac=n / (ms * 1e-3) / bw)
    for k in ('fwd', 'bwd'):
        c = st.LAST_COMPILED.get(k)
        if c is not None and k + '_ms' in out:
            out[k + '_regs'] = getattr(c, 'n_regs', None)
            out[k + '_spills'] = getattr(c, 'n_spills', None)
    return out


def sweep(bw):
    """Time each setting of the tuning knobs at the classification sizes (float32)."""
    names = ('FWD_TILE', 'FWD_WARPS', 'BWD_TILE', 'BWD_WARPS', 'BWD_CHANNELS')
    defaults = {n: getattr(st, n) for n in names + ('FWD_BY_L', 'BWD_BY_L')}
    st.FWD_BY_L, st.BWD_BY_L = {}, {}
    fwd_grid = [dict(FWD_TILE=t, FWD_WARPS=w) for t in (256, 512, 1024) for w in (1, 2, 4)]
    bwd_grid = [dict(BWD_TILE=t, BWD_WARPS=w, BWD_CHANNELS=c)
                for t, w, c in ((256, 2, 16), (256, 4, 16), (256, 4, 32), (512, 4, 16),
                                (512, 4, 32), (512, 8, 16), (1024, 8, 16))]
    rows = []
    for label, bt, d, length in SIZES[:3]:
        for side, grid in (('fwd', fwd_grid), ('bwd', bwd_grid)):
            for knobs in grid:
                for n, v in knobs.items():
                    setattr(st, n, v)
                r = dict(size=label, side=side, **knobs,
                         **measure(bt, d, length, torch.float32, bw, side == 'fwd',
                                   side == 'bwd'))
                rows.append(r)
                print('sweep', json.dumps(r), flush=True)
            for n in names:
                setattr(st, n, defaults[n])
            best = min((r for r in rows if r['size'] == label and r['side'] == side),
                       key=lambda r: r[side + '_ms'])
            print(f'best {label} {side}:', json.dumps(best), flush=True)
    st.FWD_BY_L, st.BWD_BY_L = defaults['FWD_BY_L'], defaults['BWD_BY_L']
    return rows


def other_backends(bt, d, length):
    """Forward ms of the other registered backends at one size (mamba_ssm where it is
    built), for comparison."""
    x = make_inputs(bt, d, length, torch.float32)
    out = {}
    for name, fn in BACKENDS.items():
        if name == 'triton':
            continue
        try:
            out[name] = bench_ms(lambda: fn(**x)) if name != 'torch' else None
        except Exception as e:  # report, don't stop the run
            out[name] = f'failed: {type(e).__name__}: {e}'
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--sweep', action='store_true', help='time the tile/warp settings too')
    p.add_argument('--json', type=Path, default=None)
    p.add_argument('--exact-softplus', action='store_true',
                   help="single-tile forward with Kahan's softplus (FWD_FAST_SOFTPLUS=False)")
    args = p.parse_args()
    st.FWD_FAST_SOFTPLUS = not args.exact_softplus
    bw = copy_bandwidth()
    print(f'{torch.cuda.get_device_name()}: copy bandwidth {bw / 1e12:.3f} TB/s '
          f'(read + write), torch {torch.__version__}, '
          f'FWD_FAST_SOFTPLUS={st.FWD_FAST_SOFTPLUS}')
    rows = []
    for label, bt, d, length in SIZES:
        for dtype in (torch.float32, torch.bfloat16):
            r = dict(size=label, batch=bt, d=d, L=length, dtype=str(dtype)[6:],
                     **measure(bt, d, length, dtype, bw))
            rows.append(r)
            print(json.dumps(r), flush=True)
    sweep_rows = sweep(bw) if args.sweep else []
    others = other_backends(*SIZES[0][1:])
    print('other backends, fwd ms at', SIZES[0][0], others)
    print(f"\n{'size':14} {'dtype':8} {'fwd MB':>8} {'fwd ms':>8} {'of bw':>6} "
          f"{'bwd MB':>8} {'bwd ms':>8} {'of bw':>6}")
    for r in rows:
        print(f"{r['size']:14} {r['dtype']:8} {r['fwd_MB']:8.1f} {r['fwd_ms']:8.4f} "
              f"{r['fwd_frac']:6.1%} {r['bwd_MB']:8.1f} {r['bwd_ms']:8.4f} {r['bwd_frac']:6.1%}")
    if args.json:
        args.json.write_text(json.dumps(dict(card=torch.cuda.get_device_name(),
                                             copy_bw=bw, rows=rows, sweep=sweep_rows,
                                             others=others), indent=1))


if __name__ == '__main__':
    main()
