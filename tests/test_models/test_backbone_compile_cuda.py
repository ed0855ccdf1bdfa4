"""MobileMamba(compile_cfg=dict(dynamic=True)) on the GPU: inductor around the Triton scan,
one graph for the varying padded sizes of detection batches, training like the eager model."""
import pytest
import torch
from torch._dynamo.utils import counters

from mmmobilemamba.models.backbones import MobileMamba

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')

# Padded detection batches (multiples of 32): the stride-32 and stride-64 maps are odd or
# even in either direction.
SIZES = [(800, 1344), (736, 1344), (800, 1184), (672, 1344), (800, 992)]


def test_one_graph_across_detection_sizes_and_eager_gradients(tiny_arch):
    """fp32, training mode: each size's outputs and parameter gradients within 1e-4 (output)
    and 1e-3 (gradients, sums over the whole batch) of the eager model's, relative to their
    largest value; TorchDynamo compiles one graph for all five sizes. A small arch of the
    same blocks: compiling B1's forward and backward with symbolic sizes takes minutes."""
    torch.manual_seed(0)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    kwargs = dict(arch=tiny_arch(), out_indices=(1, 2, 3), drop_path_rate=0.0)
    eager = MobileMamba(**kwargs).cuda()
    compiled = MobileMamba(compile_cfg=dict(dynamic=True), **kwargs).cuda()
    compiled.load_state_dict(eager.state_dict())
    torch._dynamo.reset()
    counters.clear()
    for h, w in SIZES:
        x = torch.randn(2, 3, h, w, device='cuda')
        grads = []
        for model in (compiled, eager):
            model.zero_grad()
            outs = model(x)
            sum(o.float().square().mean() for o in outs).backward()
            grads.append({n: p.grad.clone() for n, p in model.named_parameters()
                          if p.grad is not None})
            if model is compiled:
                ours = [o.detach() for o in outs]
            else:
                for a, b in zip(ours, outs):
                    assert ((a - b).abs().max() / b.abs().max()).item() < 1e-4, (h, w)
        for name, g in grads[1].items():
            err = ((grads[0][name] - g).abs().max() / g.abs().max().clamp_min(1e-12)).item()
            assert err < 1e-3, (h, w, name, err)
    assert counters['stats']['unique_graphs'] == 1
