"""The reference classifier on a CUDA GPU: eval logits (Triton and chunked scans) and fused
logits against the official implementation's outputs in tests/data, and the ONNX export of the
CUDA model (onnxruntime on the CPU against PyTorch on the GPU). TF32 is switched off so that float32 means float32 (1e-4 relative, as
on the CPU). Skipped without CUDA."""
import pytest
import torch

from mmmobilemamba.deployment import export_onnx, verify_onnx
from mmmobilemamba.models.utils import fuse_modules

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
TOL = 1e-4


@pytest.fixture
def full_fp32():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture(scope='module')
def fix(load_fixture):
    return load_fixture('parity_small.pt')


def logits(model, x):
    with torch.no_grad():
        return model(x.cuda(), mode='tensor').double().cpu()


@pytest.mark.parametrize('backend', ['triton', 'chunked'])
def test_cuda_logits_and_fused_logits_match_reference(fix, backend, build_fixture_classifier,
                                                      rel_err, full_fp32):
    model = build_fixture_classifier(fix, backend).cuda().eval()
    for suffix in ('', '_odd'):
        assert rel_err(logits(model, fix['x' + suffix]), fix['logits_eval' + suffix]) <= TOL
    fuse_modules(model)
    for suffix in ('', '_odd'):
        assert rel_err(logits(model, fix['x' + suffix]), fix['logits_fused' + suffix]) <= TOL


def test_onnx_export_of_a_cuda_model(fix, build_fixture_classifier, tmp_path, full_fp32):
    pytest.importorskip('onnxruntime')
    from mmmobilemamba.deployment.onnx_export import ClassifierLogits
    model = ClassifierLogits(fuse_modules(build_fixture_classifier(fix).cuda().eval()))
    path = str(tmp_path / 'cuda.onnx')
    size = tuple(fix['x'].shape[-2:])
    assert export_onnx(model, path, size, dynamic_hw=True) == ['logits']
    errors = verify_onnx(path, model, [(2, 3) + size, (1, 3, size[0] + 13, size[1] + 7)])
    assert max(errors.values()) <= TOL, errors
