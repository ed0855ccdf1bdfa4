"""The package, its registrations and MMEngine checkpoints on the installed torch."""
import os
import subprocess
import sys

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner

import mmmobilemamba
from mmmobilemamba.models import MobileMamba

REGISTERED = ['MobileMamba', 'BNLinearClsHead']
TINY = dict(embed_dims=[32, 48, 64], depths=[1, 1, 1], global_ratios=[0.8, 0.7, 0.6],
            local_ratios=[0.2, 0.2, 0.3], kernel_sizes=[7, 5, 3], ssm_ratio=2)


@pytest.mark.parametrize('library', ['mmdet', 'mmseg', 'mmpretrain'])
def test_modules_found_through_each_task_registry(library):
    registry = __import__(f'{library}.registry', fromlist=['MODELS']).MODELS
    for name in REGISTERED:
        assert registry.get(name) is not None, (library, name)
    backbone = registry.build(dict(type='MobileMamba', arch=TINY))
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


class TinyModel(BaseModel):
    def __init__(self):
        super().__init__()
        self.backbone = MobileMamba(TINY)
        self.fc = torch.nn.Linear(64, 2)

    def forward(self, inputs, labels=None, mode='loss'):
        logits = self.fc(self.backbone(inputs)[-1].mean((2, 3)))  # default_collate stacked
        if mode == 'loss':
            return dict(loss=torch.nn.functional.cross_entropy(logits, labels))
        return logits


def make_runner(work_dir, epochs, **kwargs):
    data = [dict(inputs=torch.randn(3, 32, 32), labels=torch.tensor(i % 2)) for i in range(8)]
    return Runner(
        model=TinyModel(), work_dir=str(work_dir), experiment_name=f'run{epochs}{len(kwargs)}',
        train_dataloader=dict(dataset=data, batch_size=4, collate_fn=dict(type='default_collate'),
                              sampler=dict(type='DefaultSampler', shuffle=True)),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        randomness=dict(seed=0), **kwargs)


def test_save_load_from_and_resume_without_env_switch(tmp_path):
    assert 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD' not in os.environ
    make_runner(tmp_path, 1).train()
    ckpt = tmp_path / 'epoch_1.pth'
    assert ckpt.exists()
    saved = torch.load(ckpt)  # weights_only=True by default on torch >= 2.6
    assert 'message_hub' in saved and 'optimizer' in saved

    runner = make_runner(tmp_path, 1, load_from=str(ckpt))
    runner.load_or_resume()
    for k, v in saved['state_dict'].items():
        assert torch.equal(runner.model.state_dict()[k], v), k

    resumed = make_runner(tmp_path, 2, resume=True, load_from=str(ckpt))
    resumed.train()
    assert resumed.epoch == 2 and resumed.iter == 4
    assert (tmp_path / 'epoch_2.pth').exists()


def test_version():
    assert mmmobilemamba.__version__
