"""Throughput (GPU) and latency (CPU) of MobileMamba classifiers, measured the accepted way.

GPU inference: eval mode, BatchNorms fused, batch 256 at the variant's resolution, random
input, warm-up, then CUDA events around ``--iters`` calls; the median of ``--repeats``
such timings gives img/s. ``--runs 2`` repeats the whole measurement to show the spread.
``--train``: forward, backward and an AdamW step at batch 128 on the unfused model.
CPU (``--device cpu``): batch 1 latency, min and median ms over the repeats.

Examples::

    python tools/analysis/benchmark.py --arch s6 --backend triton --amp none bf16
    python tools/analysis/benchmark.py --arch all --compile --channels-last --json out.json
    python tools/analysis/benchmark.py --arch s6 --train --amp bf16
    python tools/analysis/benchmark.py --arch t2 --device cpu --threads 4
    python tools/analysis/benchmark.py --arch s6 --device cpu --runtime onnxruntime

Needs only torch and mmengine (the backbone's base class); no mmcv.
"""
import argparse
import contextlib
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from mmmobilemamba.analysis.timing import cpu_time_ms, gpu_time_ms
from mmmobilemamba.deployment import export_formulation
from mmmobilemamba.models import MobileMamba
from mmmobilemamba.models.layers import BN_Linear

RESOLUTION = MobileMamba.arch_resolution
AMP_DTYPES = {'none': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


class Classifier(nn.Module):
    """Backbone, global average pool, BN_Linear head: the released classifiers' shape."""

    def __init__(self, arch: str, num_classes: int = 1000, scan_backend: str = 'auto') -> None:
        super().__init__()
        self.backbone = MobileMamba(arch, scan_backend=scan_backend)
        self.head = BN_Linear(self.backbone.out_channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.backbone(x)[-1]
        return self.head(x.mean((2, 3)))

    def switch_to_deploy(self) -> 'Classifier':
        """Fold every BatchNorm (backbone and head) for inference."""
        self.backbone.switch_to_deploy()
        self.head = self.head.fuse()
        return self


def build(arch: str, args: argparse.Namespace, device: torch.device, train: bool) -> nn.Module:
    model = Classifier(arch, scan_backend=args.backend).to(device)
    if train:
        model.train()
    else:
        model.eval().switch_to_deploy()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def autocast(device: torch.device, amp: str, cache: bool = True):
    """``cache=False`` inside CUDA-graph capture, where autocast's weight cache must not
    outlive the captured region."""
    dtype = AMP_DTYPES[amp]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype, cache_enabled=cache)


def cuda_graphed(step: Callable[[], None]) -> Callable[[], None]:
    """Capture ``step`` (static shapes, no host syncs) in one CUDA graph and return its
    replay: PyTorch's whole-network capture recipe (warm up on a side stream, then capture).
    Removes the per-kernel launch cost that bounds small models on the host side."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def onnxruntime_step(model: nn.Module, x: torch.Tensor, threads: Optional[int]
                     ) -> Callable[[], None]:
    """``model`` exported to ONNX (static H, W; dynamic batch) and run by onnxruntime."""
    import tempfile

    from mmmobilemamba.deployment import export_onnx, onnxruntime_session
    with tempfile.TemporaryDirectory() as tmp:  # the session holds the model in memory
        path = f'{tmp}/model.onnx'
        export_onnx(model, path, tuple(x.shape[2:]))
        session = onnxruntime_session(path, threads)
    feed = {'input': x.numpy()}
    return lambda: session.run(None, feed)


def make_step(model: nn.Module, res: int, amp: str, args: argparse.Namespace,
              device: torch.device, batch: int) -> Callable[[], None]:
    """One inference call, or one training step with ``--train``."""
    if args.runtime == 'onnxruntime':
        if device.type != 'cpu' or args.train or amp != 'none':
            raise ValueError('--runtime onnxruntime measures CPU inference in float32 only.')
        return onnxruntime_step(model, torch.randn(batch, 3, res, res), args.threads)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    x = torch.randn(batch, 3, res, res, device=device).to(memory_format=fmt)
    if args.compile:  # static shapes: one graph per variant, no dynamic-shape recompiles
        torch._dynamo.reset()
        run_model = torch.compile(model, fullgraph=True, dynamic=False, mode=args.compile_mode)
    else:
        run_model = model
    graph = args.cuda_graph
    if not args.train:
        def step():
            with torch.no_grad(), autocast(device, amp, cache=not graph):
                run_model(x)
        return cuda_graphed(step) if graph else step
    if graph and amp == 'fp16':
        raise ValueError('--cuda-graph --train supports --amp none/bf16: fp16 needs '
                         "GradScaler, whose inf check syncs with the host.")
    labels = torch.randint(0, 1000, (batch, ), device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05,
                            fused=device.type == 'cuda', capturable=graph)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == 'fp16')

    def step():
        opt.zero_grad(set_to_none=True)   # in capture: backward then allocates, not adds
        with autocast(device, amp, cache=not graph):
            loss = F.cross_entropy(run_model(x), labels)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    return cuda_graphed(step) if graph else step


def profile(step: Callable[[], None], device: torch.device, label: str) -> None:
    """Print the operators and kernels that take the time over three calls."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    with torch_profile(activities=acts) as prof:
        for _ in range(3):
            step()
        if device.type == 'cuda':
            torch.cuda.synchronize()
    key = 'cuda_time_total' if device.type == 'cuda' else 'cpu_time_total'
    print(f'--- profile {label} (3 calls) ---')
    print(prof.key_averages().table(sort_by=key, row_limit=30, max_name_column_width=60))


def environment(device: torch.device) -> Dict[str, object]:
    env = dict(torch=torch.__version__, python=platform.python_version(),
               tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
               tf32_cudnn=torch.backends.cudnn.allow_tf32,
               float32_matmul_precision=torch.get_float32_matmul_precision())
    try:
        import triton
        env['triton'] = triton.__version__
    except ImportError:
        env['triton'] = None
    if device.type == 'cuda':
        env['card'] = torch.cuda.get_device_name(device)
        env['cuda'] = torch.version.cuda
        env['cudnn'] = torch.backends.cudnn.version()
    else:
        env['card'] = platform.processor() or platform.machine()
        env['threads'] = torch.get_num_threads()
    return env


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--arch', nargs='+', default=['s6'],
                   help=f"variants, or 'all' ({', '.join(RESOLUTION)})")
    p.add_argument('--device', default='cuda', choices=['cuda', 'cpu'])
    p.add_argument('--batch-size', type=int, default=None,
                   help='default 256 (GPU inference), 128 (--train), 1 (CPU)')
    p.add_argument('--img-size', type=int, default=None, help="default: the variant's")
    p.add_argument('--amp', nargs='+', default=['none'], choices=list(AMP_DTYPES),
                   help='autocast dtypes to measure, each reported separately')
    p.add_argument('--backend', default='auto',
                   help="scan backend ('auto', 'torch', 'chunked', 'triton', ...)")
    p.add_argument('--compile', action='store_true', help='torch.compile(fullgraph=True)')
    p.add_argument('--freezing', action='store_true',
                   help='with --compile: inductor freezing (weights as constants, prepacked '
                   'CPU convolutions); inference only')
    p.add_argument('--compile-mode', default=None,
                   help="torch.compile mode, e.g. 'max-autotune-no-cudagraphs'")
    p.add_argument('--channels-last', action='store_true')
    p.add_argument('--cuda-graph', action='store_true',
                   help='capture the whole call (inference) or training step (forward, '
                   'backward, AdamW) in one CUDA graph and time its replay (eager model)')
    p.add_argument('--matmul-precision', default=None, choices=['highest', 'high', 'medium'],
                   help="torch.set_float32_matmul_precision ('high' allows TF32); default: "
                   "leave PyTorch's setting")
    p.add_argument('--train', action='store_true',
                   help='time forward + backward + AdamW step (unfused model)')
    p.add_argument('--threads', type=int, default=None, help='CPU threads (--device cpu)')
    p.add_argument('--runtime', default='torch', choices=['torch', 'onnxruntime'],
                   help='CPU inference by PyTorch, or by onnxruntime on the model exported '
                   'with static H, W (always in the export formulation; --backend unused)')
    p.add_argument('--export-formulation', action='store_true',
                   help='run PyTorch in the formulation an ONNX export traces '
                   '(mmmobilemamba.deployment.export_formulation): same math, other ops')
    p.add_argument('--warmup', type=int, default=10)
    p.add_argument('--iters', type=int, default=10, help='calls per timed repeat (GPU)')
    p.add_argument('--repeats', type=int, default=10)
    p.add_argument('--runs', type=int, default=1,
                   help='timed measurements per case, each after its own warm-up (the model '
                   'is built and compiled once)')
    p.add_argument('--json', type=Path, default=None, help='write the results here')
    p.add_argument('--profile', action='store_true',
                   help='after timing, print the kernels that take the time (torch.profiler)')
    args = p.parse_args(argv)
    if args.arch == ['all']:
        args.arch = list(RESOLUTION)
    return args


def main(argv: Optional[List[str]] = None) -> List[dict]:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == 'cpu' and args.threads:
        torch.set_num_threads(args.threads)
    if args.freezing:
        import torch._inductor.config as inductor_config
        inductor_config.freezing = True
    if args.matmul_precision:
        torch.set_float32_matmul_precision(args.matmul_precision)
    batch = args.batch_size or (1 if device.type == 'cpu' else 128 if args.train else 256)
    env = environment(device)
    print(json.dumps(env))
    results = []
    for arch in args.arch:
        for amp in args.amp:
            torch.manual_seed(0)
            t0 = time.perf_counter()
            res = args.img_size or RESOLUTION[arch]
            model = build(arch, args, device, args.train)
            formulation = (export_formulation(model) if args.export_formulation else
                           contextlib.nullcontext())
            with formulation:
                step = make_step(model, res, amp, args, device, batch)
                runs = []
                for _ in range(args.runs):  # each run: its own warm-up, then timed repeats
                    if device.type == 'cuda':
                        ms = gpu_time_ms(step, args.warmup, args.iters, args.repeats)
                    else:
                        ms = cpu_time_ms(step, args.warmup, args.repeats)
                    runs.append(dict(median_ms=statistics.median(ms), min_ms=min(ms),
                                     img_per_s=batch / statistics.median(ms) * 1e3,
                                     elapsed_s=time.perf_counter() - t0))
                if args.profile:
                    profile(step, device, f'{arch} {amp}')
            del step, model
            if device.type == 'cuda':
                torch.cuda.empty_cache()
            onnx = args.runtime == 'onnxruntime'
            row = dict(arch=arch, res=res, batch=batch,
                       mode='train' if args.train else 'infer', amp=amp,
                       compile=((args.compile_mode or 'default') if args.compile else
                                'cuda-graph' if args.cuda_graph else 'no'),
                       channels_last=args.channels_last, runtime=args.runtime,
                       backend='-' if onnx else args.backend,
                       formulation='export' if onnx or args.export_formulation else 'default',
                       device=args.device, runs=runs)
            results.append(row)
            print(json.dumps(row), flush=True)
    print_table(results, device)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(env=env, args={k: str(v) for k, v in
                                                            vars(args).items()},
                                             results=results), indent=1))
    return results


def print_table(results: List[dict], device: torch.device) -> None:
    gpu = device.type == 'cuda'
    head = 'arch  res  batch mode  amp  compile         cl  backend   formul.  runtime     ' + (
        'img/s per run' if gpu else 'latency ms per run (min / median)')
    print(head)
    for r in results:
        if gpu:
            vals = '  '.join(f"{x['img_per_s']:9.0f}" for x in r['runs'])
        else:
            vals = '  '.join(f"{x['min_ms']:.2f} / {x['median_ms']:.2f}" for x in r['runs'])
        print(f"{r['arch']:5} {r['res']:4} {r['batch']:5} {r['mode']:5} {r['amp']:4} "
              f"{r['compile']:15} {str(r['channels_last'])[0]:3} {r['backend']:9} "
              f"{r['formulation']:8} {r['runtime']:11} {vals}")


if __name__ == '__main__':
    main()
