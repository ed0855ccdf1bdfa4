"""ONNX export round trip: onnxruntime against PyTorch for every variant, dynamic batch and
dynamic H/W, a classifier config, and the export's input checks."""
import os.path as osp

import pytest
import torch

from mmmobilemamba.deployment import (default_img_size, export_onnx, load_for_export,
                                      verify_onnx)
from mmmobilemamba.models import MobileMamba

from conftest import REPO

pytest.importorskip('onnxruntime')
TOL = 1e-4   # float32 parity; float32 rounding alone gives ~1e-6 here


@pytest.mark.parametrize('arch', list(MobileMamba.arch_zoo))
def test_every_variant_round_trips_with_dynamic_batch(arch, tmp_path):
    """Exported at batch 1, run at batch 3 on fresh inputs."""
    model = load_for_export(arch=arch)
    path = str(tmp_path / f'{arch}.onnx')
    assert export_onnx(model, path, (64, 64)) == ['feat0']
    errors = verify_onnx(path, model, [(3, 3, 64, 64)])
    assert errors[(3, 3, 64, 64)] <= TOL, errors


def test_dynamic_hw_export_runs_at_other_sizes(tmp_path):
    """Exported at 128x128 with the doubling scan; runs at 160x224 and odd sizes, and
    returns all four stages."""
    model = load_for_export(arch='s6')
    model.out_indices = (0, 1, 2, 3)
    path = str(tmp_path / 's6_dyn.onnx')
    assert export_onnx(model, path, (128, 128), dynamic_hw=True) == [
        'feat0', 'feat1', 'feat2', 'feat3']
    errors = verify_onnx(path, model, [(2, 3, 160, 224), (1, 3, 97, 131)])
    assert max(errors.values()) <= TOL, errors


def test_static_export_rejects_other_sizes(tmp_path):
    """Without --dynamic-hw the file is fixed to its H, W: onnxruntime refuses others
    instead of giving silently wrong features."""
    from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument
    model = load_for_export(arch='t2')
    path = str(tmp_path / 't2.onnx')
    export_onnx(model, path, (64, 64))
    with pytest.raises(InvalidArgument, match='Got: 96'):
        verify_onnx(path, model, [(1, 3, 96, 64)])


def test_classifier_config_exports_logits(tmp_path):
    config = osp.join(REPO, 'configs/classification/mobilemamba_t2_8xb128_in1k.py')
    model = load_for_export(config=config)
    assert default_img_size(model) == (192, 192)
    path = str(tmp_path / 'cls.onnx')
    assert export_onnx(model, path, (64, 64)) == ['logits']
    import onnxruntime as ort
    out = ort.InferenceSession(path).run(None, {'input': torch.randn(2, 3, 64, 64).numpy()})
    assert out[0].shape == (2, 1000)
    assert verify_onnx(path, model, [(2, 3, 64, 64)])[(2, 3, 64, 64)] <= TOL


def test_export_input_errors(tmp_path):
    model = load_for_export(arch='t2')
    with pytest.raises(ValueError, match='opset 16 is too old'):
        export_onnx(model, str(tmp_path / 'a.onnx'), (64, 64), opset=16)
    with pytest.raises(ValueError, match='below the 32px minimum'):
        export_onnx(model, str(tmp_path / 'a.onnx'), (16, 64))
    with pytest.raises(ValueError, match='either a classification config or --arch'):
        load_for_export()
    det = osp.join(REPO, 'configs/detection/retinanet_mobilemamba_b1.py')
    with pytest.raises(ValueError, match='mmdeploy'):
        load_for_export(config=det)
    with pytest.raises(FileNotFoundError, match='export it first'):
        verify_onnx(str(tmp_path / 'missing.onnx'), model, [(1, 3, 64, 64)])
