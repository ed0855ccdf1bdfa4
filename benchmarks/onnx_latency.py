"""Time ONNX files with onnxruntime on this CPU, interleaved, and measure the CPU's float32
GEMM peak: the figures behind docs/deployment.md.

    python benchmarks/onnx_latency.py old.onnx new.onnx --shape 1 3 224 224 --threads 2
    python benchmarks/onnx_latency.py --gemm-peak --threads 2 --json peak.json

Files are timed in rounds (``--calls`` calls of each file per round) so that the slow drift
of a shared machine hits every file alike; compare files within one invocation. The first
file's outputs are the reference for the others' relative error.
"""
import argparse
import json
import os.path as osp
import statistics
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from mmmobilemamba.analysis.timing import cpu_time_ms
from mmmobilemamba.deployment import onnxruntime_session, relative_error


def compare_files(paths: List[str], shape: List[int], threads: int, rounds: int,
                  calls: int, warmup: int) -> Dict[str, dict]:
    """Per file: ``times`` (ms, all rounds) and ``rel_err`` of its first output against the
    first file's; prints min / median / p90 of the times."""
    x = np.random.default_rng().standard_normal(shape, dtype=np.float32)
    sessions = {p: onnxruntime_session(p, threads) for p in paths}
    outs = {p: s.run(None, {'input': x})[0] for p, s in sessions.items()}
    ref = outs[paths[0]]
    for p, s in sessions.items():
        cpu_time_ms(lambda: s.run(None, {'input': x}), warmup, 0)
    times: Dict[str, List[float]] = {p: [] for p in paths}
    for _ in range(rounds):
        for p, s in sessions.items():
            times[p] += cpu_time_ms(lambda: s.run(None, {'input': x}), 0, calls)
    print(f"{'file':40} {'min ms':>8} {'median':>8} {'p90':>8}  rel. error vs first")
    results = {}
    for p in paths:
        err = relative_error(outs[p], ref)
        print(f'{p[-40:]:40} {min(times[p]):8.2f} {statistics.median(times[p]):8.2f} '
              f'{np.percentile(times[p], 90):8.2f}  {err:.1e}')
        results[p] = dict(times=times[p], rel_err=err)
    return results


def gemm_peak(threads: int, n: int = 2048, calls: int = 10) -> Dict[str, float]:
    """Best-of GFLOP/s of an n x n float32 matrix product in PyTorch, NumPy and
    onnxruntime (MatMul), the ceiling for any float32 CNN on this CPU."""
    import onnx
    import torch
    from onnx import TensorProto, helper
    torch.set_num_threads(threads)
    a = np.random.default_rng().random((n, n), dtype=np.float32)
    b = np.random.default_rng().random((n, n), dtype=np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    spec = [helper.make_tensor_value_info(k, TensorProto.FLOAT, [n, n]) for k in 'ABC']
    graph = helper.make_graph([helper.make_node('MatMul', ['A', 'B'], ['C'])], 'mm',
                              spec[:2], spec[2:])
    with tempfile.TemporaryDirectory() as tmp:  # the session holds the model in memory
        scratch = osp.join(tmp, 'matmul.onnx')
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)]),
                  scratch)
        session = onnxruntime_session(scratch, threads)
    fns = {'torch.mm': lambda: ta @ tb, 'numpy': lambda: a @ b,
           'onnxruntime MatMul': lambda: session.run(None, {'A': a, 'B': b})}
    peaks = {}
    for name, fn in fns.items():
        peaks[name] = 2 * n ** 3 / min(cpu_time_ms(fn, 1, calls)) / 1e6
        print(f'{name:20} {peaks[name]:7.1f} GFLOP/s  ({n}x{n} float32, {threads} threads)')
    return peaks


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('files', nargs='*', help='ONNX files with one input named "input"')
    p.add_argument('--shape', type=int, nargs=4, default=[1, 3, 224, 224])
    p.add_argument('--threads', type=int, default=2, help='intra-op threads')
    p.add_argument('--rounds', type=int, default=8)
    p.add_argument('--calls', type=int, default=10, help='timed calls per file per round')
    p.add_argument('--warmup', type=int, default=10)
    p.add_argument('--gemm-peak', action='store_true', help='measure the GEMM peak')
    p.add_argument('--gemm-size', type=int, default=2048, help='side of the GEMM matrices')
    p.add_argument('--json', type=Path, help='write every number here')
    args = p.parse_args(argv)
    if not args.files and not args.gemm_peak:
        p.error('give ONNX files to time, --gemm-peak, or both')
    result = {}
    if args.gemm_peak:
        result['gemm_gflops'] = gemm_peak(args.threads, args.gemm_size)
    if args.files:
        result['files'] = compare_files(args.files, args.shape, args.threads, args.rounds,
                                        args.calls, args.warmup)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == '__main__':
    main()
