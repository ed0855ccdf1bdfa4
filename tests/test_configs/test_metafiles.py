"""model-index.yml and the metafiles (OpenMMLab format): every config listed exactly once,
every path real, results well-formed, and the Parameters equal to those of the built models."""
import glob
import os.path as osp
from functools import lru_cache
from pathlib import Path

import pytest
import yaml
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope

# needed while collecting: the classification entries parametrize a test
REPO = str(Path(__file__).resolve().parents[2])

TASKS = {'classification': 'Image Classification',
         'detection': ('Object Detection', 'Instance Segmentation'),
         'segmentation': 'Semantic Segmentation'}


def read_yaml(rel: str) -> dict:
    path = osp.join(REPO, rel)
    assert osp.isfile(path), f'{rel} is listed but does not exist'
    with open(path) as f:
        return yaml.safe_load(f)


@lru_cache(maxsize=None)
def metafiles() -> dict:
    index = read_yaml('model-index.yml')
    return {rel: read_yaml(rel) for rel in index['Import']}


def models() -> list:
    return [m for meta in metafiles().values() for m in meta['Models']]


def paper_models(task: str) -> list:
    return [m for m in metafiles()[f'configs/{task}/metafile.yml']['Models']
            if m['Metadata']['Training Data'] != 'toy']


def test_model_index_imports_one_metafile_per_task():
    assert sorted(metafiles()) == [f'configs/{t}/metafile.yml' for t in sorted(TASKS)]


def test_every_config_is_listed_exactly_once():
    configs = sorted(osp.relpath(p, REPO) for p in glob.glob(
        osp.join(REPO, 'configs', '**', '*.py'), recursive=True) if '_base_' not in p)
    listed = [m['Config'] for m in models()]
    assert len(configs) >= 28
    assert sorted(listed) == configs  # nothing missing, nothing twice, nothing extra
    for m in models():
        assert osp.isfile(osp.join(REPO, m['Config'])), m['Config']


def test_names_unique_and_collections_known():
    names = [m['Name'] for m in models()]
    assert len(names) == len(set(names))
    collections = {c['Name']: c for meta in metafiles().values() for c in meta['Collections']}
    for rel, meta in metafiles().items():
        for c in meta['Collections']:
            assert c['Paper']['Title'].startswith('MobileMamba')
            assert osp.isfile(osp.join(REPO, c['README']))
        for m in meta['Models']:
            assert m['In Collection'] in collections, m['Name']
            assert m['Config'].startswith(osp.dirname(rel) + '/'), m['Name']


def test_metadata_and_results_are_well_formed():
    for task, names in TASKS.items():
        names = (names, ) if isinstance(names, str) else names
        for m in metafiles()[f'configs/{task}/metafile.yml']['Models']:
            meta = m['Metadata']
            assert meta['Training Techniques'], m['Name']
            if meta['Training Data'] == 'toy':
                assert m['Config'].endswith('_toy.py') and 'Results' not in m, m['Name']
                continue
            assert not m['Config'].endswith('_toy.py'), m['Name']
            assert isinstance(meta['Parameters'], int) and meta['Parameters'] > 1e6
            assert isinstance(meta['FLOPs'], int) and meta['FLOPs'] > 1e8
            assert m['Results'], m['Name']
            for r in m['Results']:
                assert r['Task'] in names and r['Dataset'], m['Name']
                assert r['Metrics'] and all(
                    isinstance(v, float) and 0 < v < 100 for v in r['Metrics'].values())


def test_paper_numbers():
    """Spot checks against the paper's tables (Tab. 3, 4, 5, 6)."""
    top1 = {m['Name']: m['Results'][0]['Metrics']['Top 1 Accuracy']
            for m in paper_models('classification')}
    assert top1['mobilemamba_s6_8xb128_in1k'] == 78.0
    assert top1['mobilemamba_b4_8xb128_in1k_kd-1000e'] == 83.6
    assert len(top1) == 12
    det = {m['Name']: {r['Task']: r['Metrics'] for r in m['Results']}
           for m in paper_models('detection')}
    assert det['mask-rcnn_mobilemamba_b1']['Instance Segmentation']['mask AP'] == 37.4
    assert det['ssdlite_mobilemamba_b1_512']['Object Detection']['box AP'] == 29.5
    seg = {m['Name']: m['Results'][0]['Metrics']['mIoU'] for m in paper_models('segmentation')}
    assert seg == {'deeplabv3_mobilemamba_b4': 36.6, 'fpn_mobilemamba_b4': 42.5,
                   'pspnet_mobilemamba_b4': 36.9}


def test_kd_entries_share_the_plain_models_size():
    """The teacher is not part of the model: a † entry has its plain variant's size."""
    meta = {m['Name']: m['Metadata'] for m in paper_models('classification')}
    kd = [n for n in meta if n.endswith('_kd-1000e')]
    assert len(kd) == 6
    for name in kd:
        plain = meta[name[:-len('_kd-1000e')]]
        assert (meta[name]['Parameters'], meta[name]['FLOPs']) == (plain['Parameters'],
                                                                  plain['FLOPs'])


@pytest.mark.parametrize('entry', [m for m in paper_models('classification')
                                   if not m['Name'].endswith('_kd-1000e')],
                         ids=lambda m: m['Name'])
def test_classification_parameters_match_the_built_model(entry, n_params):
    """Backbone + head of the config (a classifier's neck is parameter-free pooling)."""
    cfg = Config.fromfile(osp.join(REPO, entry['Config']))
    assert cfg.model.neck.type == 'GlobalAveragePooling'
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        backbone, head = MODELS.build(cfg.model.backbone), MODELS.build(cfg.model.head)
    assert n_params(backbone, head) == entry['Metadata']['Parameters']


@pytest.mark.parametrize('task, scope', [('detection', 'mmdet'), ('segmentation', 'mmseg')])
def test_dense_task_parameters_match_the_built_model(task, scope, n_params):
    pytest.importorskip(scope)
    for entry in paper_models(task):
        cfg = Config.fromfile(osp.join(REPO, entry['Config']))
        cfg.model.backbone.init_cfg = None  # no pretrained-weights warning
        with DefaultScope.overwrite_default_scope(scope):
            model = MODELS.build(cfg.model)
        aux = getattr(model, 'auxiliary_head', None)  # training-only, not counted
        count = n_params(model) - (n_params(aux) if aux is not None else 0)
        assert count == entry['Metadata']['Parameters'], entry['Name']
