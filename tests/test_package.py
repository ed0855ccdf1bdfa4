"""The package: its modules found through each task library's registry, mmcv's compiled
ops, importing it without one of the task libraries, and its version."""
import os
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


FAKE_TRANSFORMERS_5 = '''__version__ = '5.0.0'


class AutoConfig:
    pass


class PreTrainedModel:
    pass
'''


def test_mmpretrain_broken_by_transformers_5_costs_only_classification(tmp_path, run_tool):
    """mmpretrain 1.2.0 cannot import beside transformers >= 5 (its multimodal models need
    names that transformers 5 removed). A stand-in transformers 5.0.0 reproduces that here:
    importing us still registers the backbone for mmdet and mmseg, with a warning that names
    the fix, and a classification config stops with that fix before anything runs."""
    pkg = tmp_path / 'transformers'
    pkg.mkdir()
    (pkg / '__init__.py').write_text(FAKE_TRANSFORMERS_5)
    meta = tmp_path / 'transformers-5.0.0.dist-info'
    meta.mkdir()
    (meta / 'METADATA').write_text('Metadata-Version: 2.1\nName: transformers\nVersion: 5.0.0\n')
    env = {'PYTHONPATH': f'{tmp_path}:{mmmobilemamba.__path__[0]}/..'}
    code = ('import mmmobilemamba\nfrom mmdet.registry import MODELS as D\n'
            'from mmseg.registry import MODELS as S\n'
            "assert D.get('MobileMamba') and D.get('EfficientViTFPN') and S.get('MobileMamba')\n"
            "print('ok')")
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         env=dict(os.environ, **env))
    assert res.returncode == 0 and 'ok' in res.stdout, res.stderr[-2000:]
    fix = 'pip install "transformers<5"'
    assert 'MobileMamba modules for mmpretrain are not registered' in res.stderr
    assert fix in res.stderr
    run = run_tool('tools/train.py', 'configs/classification/mobilemamba_t2_8xb128_in1k_toy.py',
                   '--work-dir', str(tmp_path / 'work'), check=False, env=env)
    assert run.returncode != 0
    assert 'needs mmpretrain' in run.output and fix in run.output
    assert 'found 5.0.0' in run.output
