"""Fixtures shared by the whole suite: where the repository and its reference data are, the
relative-error measure, running a repository tool, building models from configs, and the toy
ImageNet that several directories train on.

Helpers are fixtures that return functions, so test modules never import this file.
"""
import copy
import functools
import importlib.util
import os
import os.path as osp
import subprocess
import sys
import types
from typing import Callable, List, NamedTuple, Optional, Union

import pytest
import torch
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DATA = osp.join(REPO, 'tests', 'data')
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
TOY_CLS_CONFIG = osp.join(REPO, 'configs', 'classification', 'mobilemamba_t2_8xb128_in1k_toy.py')


# --------------------------------------------------------------------------- isolation
@pytest.fixture(autouse=True)
def isolated_default_scope():
    """Each test starts in the mmpretrain scope and cannot leak its own (e.g. a detection
    test's init_default_scope('mmdet')) into the next one."""
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


@pytest.fixture(autouse=True)
def fresh_visualizers():
    """MMEngine keeps one visualizer per name for the whole process, and the configs name
    theirs ``'visualizer'``: without this, a test's Runner would get the first test's one
    and write into its work_dir, which pytest removes once that test has passed. Cleared as
    mmengine's own ``RunnerTestCase`` does, for each visualizer class."""
    yield
    from mmengine.visualization import Visualizer
    classes = [Visualizer]
    while classes:
        cls = classes.pop()
        cls._instance_dict.clear()
        classes.extend(cls.__subclasses__())


@pytest.fixture(scope='module')
def one_thread():
    """Small models on a few shared cores run many times faster on one intra-op thread;
    a module opts in with ``pytestmark = pytest.mark.usefixtures('one_thread')``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------ paths and numbers
@pytest.fixture(scope='session')
def repo_root() -> str:
    """The repository root: configs, tools and docs are found from here."""
    return REPO


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(scope='session')
def rel_err() -> Callable[[torch.Tensor, torch.Tensor], float]:
    """``rel_err(a, b)``: ||a - b|| / ||b||, computed in float64."""
    return _rel_err


@pytest.fixture(scope='session')
def tiny_arch() -> Callable[[], dict]:
    """``tiny_arch()``: a fresh three-stage arch dict (channels 32/48/64, one block each) for
    tests where the exact variant does not matter."""
    return lambda: dict(embed_dims=[32, 48, 64], depths=[1, 1, 1],
                        global_ratios=[0.8, 0.7, 0.6], local_ratios=[0.2, 0.2, 0.3],
                        kernel_sizes=[7, 5, 3], ssm_ratio=2)


@pytest.fixture(scope='session')
def classifier_params() -> dict:
    """Parameters of each variant's 1000-class classifier (backbone + BNLinear head), exact:
    the paper's table rounded to 0.1M is 8.8 / 14.2 / 15.0 / 17.1 / 17.1 / 17.1."""
    return {'t2': 8_836_890, 't4': 14_176_090, 's6': 15_036_632, 'b1': 17_122_849,
            'b2': 17_122_849, 'b4': 17_122_849}


@pytest.fixture(scope='session')
def n_params() -> Callable[..., int]:
    """``n_params(*modules)``: their parameter count."""
    return lambda *modules: sum(p.numel() for m in modules for p in m.parameters())


# --------------------------------------------------------------------- reference data
@functools.lru_cache(maxsize=None)
def _read_fixture(path: str) -> dict:
    return torch.load(path, weights_only=False)  # the files hold strings and nested dicts


@pytest.fixture(scope='session')
def data_file() -> Callable[[str], str]:
    """``data_file(name)``: the path of a file in tests/data, which must exist."""
    def path_of(name: str) -> str:
        path = osp.join(DATA, name)
        if not osp.exists(path):
            pytest.fail(f'{path} is missing: the reference data belong in tests/data, as '
                        'tests/data/README.md describes (restore it from git)', pytrace=False)
        return path
    return path_of


@pytest.fixture(scope='session')
def load_fixture(data_file) -> Callable[[str], dict]:
    """``load_fixture(name)``: a reference output file of tests/data (a fresh copy each
    call, so a test may change what it gets)."""
    return lambda name: copy.deepcopy(_read_fixture(data_file(name)))


@pytest.fixture(scope='session')
def fixture_arch() -> Callable[[dict], dict]:
    """``fixture_arch(fix)``: our arch dict for a reference fixture's official config."""
    def arch(fix: dict) -> dict:
        c = fix['config']
        return dict(embed_dims=c['embed_dim'], depths=c['depth'], global_ratios=c['global_ratio'],
                    local_ratios=c['local_ratio'], kernel_sizes=c['kernels'],
                    ssm_ratio=c['ssm_ratio'])
    return arch


@pytest.fixture(scope='session')
def build_fixture_classifier(fixture_arch) -> Callable[..., torch.nn.Module]:
    """``build_fixture_classifier(fix, backend='auto')``: the fixture's classifier as an
    mmpretrain ImageClassifier with its converted weights loaded strictly."""
    def build(fix: dict, backend: str = 'auto') -> torch.nn.Module:
        from mmpretrain.models import ImageClassifier

        from mmmobilemamba.utils import official_to_mmpretrain
        c = fix['config']
        model = ImageClassifier(
            backbone=dict(type='MobileMamba', arch=fixture_arch(fix), out_indices=(0, 1, 2, 3),
                          drop_path_rate=c['drop_path'], scan_backend=backend),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='BNLinearClsHead', num_classes=c['num_classes'],
                      in_channels=c['embed_dim'][-1], distillation=c['distillation']))
        model.load_state_dict(official_to_mmpretrain(fix['state_dict']), strict=True)
        return model
    return build


# ------------------------------------------------------------------------ configs
@pytest.fixture(scope='session')
def build_model() -> Callable[..., torch.nn.Module]:
    """``build_model(cfg, scope=None)``: ``cfg.model`` (a Config or a config path) built as
    the Runner builds it: a top-level ``data_preprocessor`` merged in, in the config's
    ``default_scope`` unless ``scope`` names another."""
    def build(cfg: Union[Config, str], scope: Optional[str] = None) -> torch.nn.Module:
        from mmengine.registry import MODELS, DefaultScope
        if isinstance(cfg, str):
            cfg = Config.fromfile(cfg)
        model_cfg = copy.deepcopy(cfg.model)  # mmpretrain's RandomBatchAugment extends `probs`
        if cfg.get('data_preprocessor'):
            model_cfg.setdefault('data_preprocessor', copy.deepcopy(cfg.data_preprocessor))
        with DefaultScope.overwrite_default_scope(scope or cfg.default_scope):
            return MODELS.build(model_cfg)
    return build


@pytest.fixture(scope='session')
def data_root_options() -> Callable[..., List[str]]:
    """``data_root_options(root, config=None)``: the ``--cfg-options`` that point a config's
    train, val and test datasets at ``root``. Given the config (a path), also what its data
    needs: a training set inside a RepeatDataset (SSDLite) is reached, and a COCO config
    (mmdet scope) gets a trailing '/' (it joins data_root and file names as strings) and the
    val/test annotation file."""
    def options(root: str, config: Optional[str] = None) -> List[str]:
        if config is None:
            return [f'{loader}.dataset.data_root={root}' for loader in LOADERS]
        cfg = Config.fromfile(config)
        train = 'train_dataloader.dataset'
        if cfg.train_dataloader.dataset.type == 'RepeatDataset':
            train += '.dataset'
        coco = cfg.get('default_scope') == 'mmdet'
        if coco:
            root = osp.join(root, '')
        opts = [f'{loader}.data_root={root}' for loader in
                (train, 'val_dataloader.dataset', 'test_dataloader.dataset')]
        if coco:
            ann = osp.join(root, 'annotations', 'instances_val2017.json')
            opts += [f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}']
        return opts
    return options


# -------------------------------------------------------------------------- tools
class ToolRun(NamedTuple):
    """What a tool run printed, and how it ended."""
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def _tail(text: str, limit: int = 4000) -> str:
    return text[-limit:]


@pytest.fixture(scope='session')
def run_tool() -> Callable[..., ToolRun]:
    """``run_tool(tool, *args, cwd=REPO, timeout=600, check=True, env=None)``: run a
    repository tool (a path relative to the repository root; ``.sh`` with bash, else with
    this Python) as a subprocess and return a ``ToolRun``. With ``check`` a non-zero exit
    fails the test with the tail of the output; a timeout always does. The subprocess gets
    one OpenMP thread (several threads per process make every training step many times
    slower on a busy 2-core CPU) and the repository on PYTHONPATH (tools may run from a
    temporary directory); ``env`` adds or replaces variables."""
    def run(tool: str, *args: str, cwd: Optional[str] = None, timeout: float = 600,
            check: bool = True, env: Optional[dict] = None) -> ToolRun:
        path = osp.join(REPO, tool)
        cmd = ['bash' if tool.endswith('.sh') else sys.executable, path, *map(str, args)]
        full_env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=os.pathsep.join(
            filter(None, [REPO, os.environ.get('PYTHONPATH')])))
        full_env.update(env or {})
        try:
            proc = subprocess.run(cmd, cwd=str(cwd or REPO), env=full_env, capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired as err:
            partial = ''.join(s.decode() if isinstance(s, bytes) else s
                              for s in (err.stdout, err.stderr) if s)
            pytest.fail(f'{tool} did not finish within {timeout} s:\n{_tail(partial)}',
                        pytrace=False)
        result = ToolRun(proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            pytest.fail(f'{tool} exited with {proc.returncode}:\n{_tail(result.output)}',
                        pytrace=False)
        return result
    return run


@pytest.fixture(scope='session')
def import_tool() -> Callable[[str], types.ModuleType]:
    """``import_tool(path)``: a repository tool script (path relative to the repository root)
    imported as a module, to call its functions in-process."""
    def load(tool: str) -> types.ModuleType:
        path = osp.join(REPO, tool)
        name = osp.splitext(osp.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


# ------------------------------------------------------------------------ toy data
@pytest.fixture(scope='session')
def toy_imagenet(tmp_path_factory) -> str:
    """A small toy ImageNet: 4 classes x (2 train + 2 val) images of 32 px. Shared by the
    whole session: tests that break it work on a copy."""
    from mmmobilemamba.datasets.toy_classification import make_toy_imagenet
    root = str(tmp_path_factory.mktemp('toy') / 'imagenet')
    make_toy_imagenet(root, num_classes=4, train_per_class=2, val_per_class=2, size=32)
    return root


@pytest.fixture(scope='session')
def worker_batch() -> Callable[..., dict]:
    """``worker_batch(cfg, paths, labels)``: what a classification config's train
    dataloader workers send for these files: its train pipeline on each, then its collate
    function (e.g. ``use_gpu_augment``'s decoded images and draws in one storage)."""
    def make(cfg: Config, paths: List[str], labels: List[int]) -> dict:
        from mmengine.registry import FUNCTIONS, TRANSFORMS, DefaultScope
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            pipeline = [TRANSFORMS.build(dict(t)) for t in cfg.train_dataloader.dataset.pipeline]
            collate = dict(cfg.train_dataloader.get('collate_fn', dict(type='pseudo_collate')))
            collate_fn = FUNCTIONS.get(collate.pop('type'))
        samples = []
        for path, label in zip(paths, labels):
            results = dict(img_path=path, gt_label=label)
            for t in pipeline:
                results = t(results)
            samples.append(results)
        return collate_fn(samples, **collate)
    return make


@pytest.fixture(scope='session')
def toy_cls_config() -> str:
    """The T2 toy classification config's path."""
    return TOY_CLS_CONFIG


@pytest.fixture(scope='session')
def toy_cls_cfg() -> Callable[[str, str], Config]:
    """``toy_cls_cfg(data_root, work_dir)``: the T2 toy classification config on
    ``data_root``, batch 2, writing to ``work_dir``."""
    def make(data_root: str, work_dir: str) -> Config:
        cfg = Config.fromfile(TOY_CLS_CONFIG)
        for loader in LOADERS:
            cfg[loader].dataset.data_root = data_root
        cfg.train_dataloader.batch_size = 2
        cfg.work_dir = work_dir
        return cfg
    return make
