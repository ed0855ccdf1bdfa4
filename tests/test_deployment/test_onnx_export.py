"""ONNX export round trip: onnxruntime against PyTorch for every variant, dynamic batch and
dynamic H/W, against the reference implementation's float64 logits, a classifier config,
and the export's input checks.

A freshly built MobileMamba zeroes its mixers out (bn_weight_init=0 before every residual
add), so the round trips here use models whose BatchNorms and SSM parameters are drawn away
from their initial values, or the fixture's weights: otherwise a broken scan would pass."""
import os.path as osp

import pytest
import torch
from torch import nn

from mmmobilemamba.deployment import (default_img_size, export_onnx, load_for_export,
                                      onnxruntime_session, verify_onnx)
from mmmobilemamba.deployment.onnx_export import ClassifierLogits
from mmmobilemamba.models import MobileMamba
from mmmobilemamba.models.layers.ss2d import SS2D
from mmmobilemamba.models.utils import fuse_modules

pytest.importorskip('onnxruntime')
TOL = 1e-4   # float32 parity; float32 rounding alone gives ~1e-6 here


def randomized(arch: str, seed: int = 0) -> MobileMamba:
    """A fused, eval-mode backbone in which every branch contributes to the output."""
    model = MobileMamba(arch, out_indices=(0, 1, 2, 3))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0, 0.2, generator=g)
                m.running_mean.normal_(0, 0.1, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
            elif isinstance(m, SS2D):
                m.A_logs.normal_(0, 0.5, generator=g)
                m.dt_projs_bias.normal_(-1, 0.5, generator=g)
    return fuse_modules(model.eval())


@pytest.mark.parametrize('arch', list(MobileMamba.arch_zoo))
def test_every_variant_round_trips_with_dynamic_batch(arch, tmp_path):
    """Exported at batch 1, run at batch 3 on fresh inputs; every stage compared."""
    model = randomized(arch)
    path = str(tmp_path / f'{arch}.onnx')
    assert export_onnx(model, path, (64, 64)) == ['feat0', 'feat1', 'feat2', 'feat3']
    errors = verify_onnx(path, model, [(3, 3, 64, 64)])
    assert errors[(3, 3, 64, 64)] <= TOL, errors


def test_dynamic_hw_export_runs_at_other_sizes(tmp_path):
    """Exported at 128x128 with the doubling scan; runs at 160x224 and odd sizes, and
    returns all four stages."""
    model = randomized('s6')
    path = str(tmp_path / 's6_dyn.onnx')
    assert export_onnx(model, path, (128, 128), dynamic_hw=True) == [
        'feat0', 'feat1', 'feat2', 'feat3']
    errors = verify_onnx(path, model, [(2, 3, 160, 224), (1, 3, 97, 131)])
    assert max(errors.values()) <= TOL, errors


@pytest.mark.parametrize('dynamic_hw', [False, True])
def test_exported_fixture_model_matches_reference_float64(dynamic_hw, tmp_path, load_fixture,
                                                         build_fixture_classifier, rel_err):
    """The fixture's weights through ONNX give the reference implementation's float64
    logits: at batch 2 (exported at 1), and for the dynamic-H/W file also at 144x208."""
    fix = load_fixture('parity_small.pt')
    model = fuse_modules(ClassifierLogits(build_fixture_classifier(fix, 'auto')).eval())
    path = str(tmp_path / 'fixture.onnx')
    export_onnx(model, path, (128, 128), dynamic_hw=dynamic_hw)
    session = onnxruntime_session(path)
    reference = fix['float64_reference']
    cases = [('x', 'logits_eval')] + ([('x_odd', 'logits_eval_odd')] if dynamic_hw else [])
    for x, want in cases:
        (got, ) = session.run(None, {'input': fix[x].numpy()})
        assert rel_err(torch.from_numpy(got), reference[want]) <= TOL, x


def test_static_export_rejects_other_sizes(tmp_path):
    """Without --dynamic-hw the file is fixed to its H, W: onnxruntime refuses others
    instead of giving silently wrong features."""
    from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument
    model = load_for_export(arch='t2')
    path = str(tmp_path / 't2.onnx')
    export_onnx(model, path, (64, 64))
    with pytest.raises(InvalidArgument, match='Got: 96'):
        verify_onnx(path, model, [(1, 3, 96, 64)])


def test_classifier_config_exports_logits(tmp_path, repo_root):
    config = osp.join(repo_root, 'configs/classification/mobilemamba_t2_8xb128_in1k.py')
    model = load_for_export(config=config)
    assert default_img_size(model) == (192, 192)
    path = str(tmp_path / 'cls.onnx')
    assert export_onnx(model, path, (64, 64)) == ['logits']
    import onnxruntime as ort
    out = ort.InferenceSession(path).run(None, {'input': torch.randn(2, 3, 64, 64).numpy()})
    assert out[0].shape == (2, 1000)
    assert verify_onnx(path, model, [(2, 3, 64, 64)])[(2, 3, 64, 64)] <= TOL


def test_export_input_errors(tmp_path, repo_root):
    model = load_for_export(arch='t2')
    with pytest.raises(ValueError, match='opset 16 is too old'):
        export_onnx(model, str(tmp_path / 'a.onnx'), (64, 64), opset=16)
    with pytest.raises(ValueError, match='below the 32px minimum'):
        export_onnx(model, str(tmp_path / 'a.onnx'), (16, 64))
    with pytest.raises(ValueError, match='either a classification config or --arch'):
        load_for_export()
    det = osp.join(repo_root, 'configs/detection/retinanet_mobilemamba_b1.py')
    with pytest.raises(ValueError, match='mmdeploy'):
        load_for_export(config=det)
    with pytest.raises(FileNotFoundError, match='export it first'):
        verify_onnx(str(tmp_path / 'missing.onnx'), model, [(1, 3, 64, 64)])


def test_latency_tool_times_exports_and_measures_gemm_peak(tmp_path, import_tool):
    """benchmarks/onnx_latency.py: times files interleaved and reports their agreement
    (a static and a dynamic-H/W export of one model agree), and the GEMM peak it measures
    is positive for every library."""
    onnx_latency = import_tool('benchmarks/onnx_latency.py')
    model = randomized('t2')
    paths = [str(tmp_path / 'static.onnx'), str(tmp_path / 'dynamic.onnx')]
    export_onnx(model, paths[0], (64, 64))
    export_onnx(model, paths[1], (64, 64), dynamic_hw=True)
    results = onnx_latency.compare_files(paths, [2, 3, 64, 64], threads=1, rounds=2, calls=2,
                                         warmup=1)
    assert [len(r['times']) for r in results.values()] == [4, 4]
    assert results[paths[0]]['rel_err'] == 0 and results[paths[1]]['rel_err'] <= TOL
    peaks = onnx_latency.gemm_peak(threads=1, n=128, calls=2)
    assert set(peaks) == {'torch.mm', 'numpy', 'onnxruntime MatMul'}
    assert min(peaks.values()) > 0
