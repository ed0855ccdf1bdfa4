"""``import mmmobilemamba`` puts our classification models into mmpretrain's model hub:
``list_models``, ``get_model`` and ``inference_model`` know them by name, as mmpretrain's own."""
import glob
import os.path as osp

import numpy as np
import pytest
from mmpretrain import get_model, inference_model, list_models

from mmmobilemamba.models.classifiers import KDImageClassifier
from mmmobilemamba.utils.model_index import resource_root

pytestmark = pytest.mark.usefixtures('one_thread')


def test_list_models_finds_every_classification_config(repo_root):
    configs = glob.glob(osp.join(repo_root, 'configs', 'classification', '*.py'))
    assert len(configs) >= 14
    assert sorted(list_models('*mobilemamba*')) == sorted(
        osp.splitext(osp.basename(p))[0] for p in configs)
    assert resource_root() == repo_root  # run from the clone: its configs, not a copy


@pytest.mark.parametrize('arch', ['t2', 's6', 'b4'])
def test_get_model_builds_the_named_variant(arch, classifier_params, n_params):
    model = get_model(f'mobilemamba_{arch}_8xb128_in1k')
    assert model.backbone.arch_name == arch
    assert n_params(model) == classifier_params[arch]
    distilled = get_model(f'mobilemamba_{arch}_8xb128_in1k_kd-1000e')
    assert isinstance(distilled, KDImageClassifier)
    assert distilled.backbone.arch_name == arch


def test_inference_model_by_name():
    img = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)
    result = inference_model('mobilemamba_t2_8xb128_in1k', img, device='cpu')
    assert result['pred_scores'].shape == (1000, )
    assert abs(float(result['pred_scores'].sum()) - 1) < 1e-4
    assert 0 <= result['pred_label'] < 1000 and isinstance(result['pred_class'], str)
