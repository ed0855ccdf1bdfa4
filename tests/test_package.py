"""The package: its modules found through each task library's registry, mmcv's compiled
ops, importing it without one of the task libraries, and its version."""
import subprocess
import sys

import pytest
import torch

import mmmobilemamba
from mmmobilemamba.models import MobileMamba

REGISTERED = ['MobileMamba', 'BNLinearClsHead']


@pytest.mark.parametrize('library', ['mmdet', 'mmseg', 'mmpretrain'])
def test_modules_found_through_each_task_registry(library, tiny_arch):
    registry = __import__(f'{library}.registry', fromlist=['MODELS']).MODELS
    for name in REGISTERED:
        assert registry.get(name) is not None, (library, name)
    backbone = registry.build(dict(type='MobileMamba', arch=tiny_arch()))
    assert isinstance(backbone, MobileMamba)


def test_mmcv_ops_are_compiled():
    from mmcv.ops import RoIAlign, nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [50., 50., 60., 60.]])
    _, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
    assert keep.tolist() == [0, 2]
    out = RoIAlign((2, 2), 1.0, 0)(torch.ones(1, 1, 8, 8), torch.tensor([[0., 0., 0., 4., 4.]]))
    assert torch.allclose(out, torch.ones(1, 1, 2, 2))


BLOCKER = '''
import sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name == {lib!r} or name.startswith({lib!r} + '.'):
            raise ModuleNotFoundError('blocked ' + name, name=name)
sys.meta_path.insert(0, Blocker())
import mmmobilemamba
from mmengine.registry import MODELS
assert MODELS.get('MobileMamba') is not None
assert {lib!r} not in sys.modules
print('registered:', sorted(k for k in MODELS.module_dict if k in {names!r}))
'''


@pytest.mark.parametrize('library', ['mmdet', 'mmseg', 'mmpretrain', 'mmcv'])
def test_import_without_one_library(library):
    code = BLOCKER.format(lib=library, names=REGISTERED)
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    head_registered = "'BNLinearClsHead'" in res.stdout
    assert head_registered == (library not in ('mmpretrain', 'mmcv'))


def test_version():
    assert mmmobilemamba.__version__
