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
