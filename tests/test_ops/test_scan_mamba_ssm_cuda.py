"""The 'mamba_ssm' scan backend (mamba-ssm's fused CUDA kernel) against the sequential
'torch' backend in float64: forward and every gradient, L from 1 to 8192. Needs CUDA and a
mamba-ssm build (`bash tools/build_cuda_wheels.sh mamba-ssm`); skipped otherwise. mamba-ssm
compiles with --use_fast_math, hence 1e-4 for the output and 1e-3 for the gradients."""
import pytest
import torch

from mmmobilemamba.ops.scan_mamba_ssm import _import_error
from mmmobilemamba.ops.selective_scan import selective_scan

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available() or _import_error() is not None,
    reason='needs a CUDA GPU and mamba-ssm')
NAMES = ('u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias')


def scan_with_grads(backend, inputs, grad_y, device, dtype):
    args = {k: v.to(device, dtype).requires_grad_() for k, v in inputs.items()}
    y = selective_scan(**args, backend=backend)
    (y * grad_y.to(device, y.dtype)).sum().backward()
    return [y.double().cpu()] + [args[k].grad.double().cpu() for k in NAMES]


@pytest.mark.parametrize('length', [1, 2, 7, 64, 197, 1000, 4096, 8192])
def test_forward_and_gradients_match_the_float64_reference(length):
    g = torch.Generator().manual_seed(length)
    bt, d = 2, 16

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    inputs = dict(u=r(bt, d, length), delta=0.5 * r(bt, 2, d, length), A=-torch.exp(0.5 * r(2, d)),
                  B=r(bt, 2, length), C=r(bt, 2, length), D=r(2, d), delta_bias=0.3 * r(2, d))
    grad_y = r(bt, d, length)
    want = scan_with_grads('torch', inputs, grad_y, 'cuda', torch.float64)
    got = scan_with_grads('mamba_ssm', inputs, grad_y, 'cuda', torch.float32)
    for i, (name, a, b) in enumerate(zip(('y', ) + NAMES, got, want)):
        # at L = 1 the state starts from zero, so A's gradient is exactly 0: matched exactly
        err = (a - b).norm().item() / max(b.norm().item(), 1e-12)
        assert err <= (1e-4 if i == 0 else 1e-3), (name, length, err)
