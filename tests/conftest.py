"""Shared test helpers: fixture locations and the relative-error measure used everywhere."""
import os.path as osp

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
FIXTURES = osp.join(osp.dirname(REPO), 'shared', 'fixtures')


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b||, computed in float64."""
    a, b = a.detach().double(), b.detach().double()
    return ((a - b).norm() / b.norm()).item()


def load_fixture(name: str) -> dict:
    path = osp.join(FIXTURES, name)
    if not osp.exists(path):
        pytest.fail(f'fixture {path} missing: the repo expects ../shared/fixtures beside it')
    return torch.load(path, weights_only=False)


def build_classifier(fix: dict, backend: str):
    """The fixture's classifier as an mmpretrain ImageClassifier with its weights loaded."""
    from mmpretrain.models import ImageClassifier

    from mmmobilemamba.models.utils import official_to_mmpretrain
    c = fix['config']
    arch = dict(embed_dims=c['embed_dim'], depths=c['depth'], global_ratios=c['global_ratio'],
                local_ratios=c['local_ratio'], kernel_sizes=c['kernels'],
                ssm_ratio=c['ssm_ratio'])
    model = ImageClassifier(
        backbone=dict(type='MobileMamba', arch=arch, out_indices=(0, 1, 2, 3),
                      drop_path_rate=c['drop_path'], scan_backend=backend),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='BNLinearClsHead', num_classes=c['num_classes'],
                  in_channels=c['embed_dim'][-1], distillation=c['distillation']))
    model.load_state_dict(official_to_mmpretrain(fix['state_dict']), strict=True)
    return model


@pytest.fixture(autouse=True)
def isolated_default_scope():
    """Each test starts in the mmpretrain scope and cannot leak its own (e.g. a detection
    test's init_default_scope('mmdet')) into the next one."""
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


@pytest.fixture(scope='module')
def one_thread():
    """Small models on a few shared cores run many times faster on one intra-op thread;
    a module opts in with ``pytestmark = pytest.mark.usefixtures('one_thread')``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
