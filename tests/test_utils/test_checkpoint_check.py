"""Checkpoint checks before anything loads: ``check_checkpoint_file`` names empty, truncated,
HTML and missing files; ``check_run_checkpoint`` (what tools/train.py and tools/test.py run
for load_from and --resume) and the backbone's init_cfg name another model's checkpoint, a
bare backbone, a pickled Python object, or a fine-tuning source with another head."""
import argparse
import os
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmmobilemamba.models import MobileMamba
from mmmobilemamba.utils import CheckpointError, check_checkpoint_file
from mmmobilemamba.utils.run_config import check_run_checkpoint


pytestmark = pytest.mark.usefixtures('one_thread')


def save_truncated(src: str, dst: str) -> str:
    """A copy of ``src`` cut to half its size, as an interrupted download leaves it."""
    with open(src, 'rb') as f:
        data = f.read()
    with open(dst, 'wb') as f:
        f.write(data[:len(data) // 2])
    return dst


def test_checkpoint_file_problems_are_named(tmp_path):
    good = str(tmp_path / 'good.pth')
    torch.save({'state_dict': {'w': torch.ones(3)}}, good)
    check_checkpoint_file(good)
    bad = save_truncated(good, str(tmp_path / 'cut.pth'))
    with pytest.raises(CheckpointError, match=r'cut\.pth \(\d+ bytes\) is truncated or not a '
                       r'torch checkpoint \(zip central directory missing\).*Re-download'):
        check_checkpoint_file(bad)
    (tmp_path / 'empty.pth').write_bytes(b'')
    with pytest.raises(CheckpointError, match=r'empty\.pth \(0 bytes\) is empty'):
        check_checkpoint_file(str(tmp_path / 'empty.pth'))
    (tmp_path / 'page.pth').write_bytes(b'<html>Not Found</html>')
    with pytest.raises(CheckpointError, match=r"page\.pth .*starts with b'<htm'"):
        check_checkpoint_file(str(tmp_path / 'page.pth'))
    with pytest.raises(FileNotFoundError, match=r'nope\.pth does not exist'):
        check_checkpoint_file(str(tmp_path / 'nope.pth'))
    check_checkpoint_file('https://example.com/w.pth')  # MMEngine downloads and checks URLs


@pytest.fixture(scope='module')
def toy_runner(toy_imagenet, toy_cls_cfg, tmp_path_factory) -> Runner:
    """The toy T2 classifier's runner (built, not trained) for the load_from checks."""
    return Runner.from_cfg(toy_cls_cfg(toy_imagenet, str(tmp_path_factory.mktemp('runner'))))


@pytest.fixture(scope='module')
def checkpoints(toy_runner, tmp_path_factory) -> dict:
    """A matching checkpoint, a truncated one, another model's, a bare backbone, a
    fine-tuning source (1000-class head) and one holding a non-tensor Python object."""
    import torchvision
    root = tmp_path_factory.mktemp('ckpts')
    own = toy_runner.model.state_dict()
    files = dict(good={'state_dict': own, 'meta': {'experiment_name': 'toy_run'}},
                 resnet={'state_dict': torchvision.models.resnet18().state_dict(),
                         'meta': {'experiment_name': 'resnet18_run'}},
                 bare={k[len('backbone.'):]: v for k, v in own.items()
                       if k.startswith('backbone.')},
                 in1k={k: (torch.zeros(1000, *v.shape[1:]) if v.shape[:1] == (4, ) else v)
                       for k, v in own.items()},
                 pickled={'state_dict': own, 'args': argparse.Namespace(lr=1)})
    paths = {}
    for name, obj in files.items():
        paths[name] = str(root / f'{name}.pth')
        torch.save(obj, paths[name])
    paths['cut'] = save_truncated(paths['good'], str(root / 'cut.pth'))
    return paths


# (mode, resume, which checkpoints pass): resume and test need every tensor; load_from
# for fine-tuning accepts another head (the 1000-class source) but not another model.
MODES = [('train', False, {'good', 'in1k'}), ('train', True, {'good'}), ('test', False, {'good'})]


@pytest.mark.parametrize('mode,resume,passing', MODES)
def test_run_checkpoint_check(toy_runner, checkpoints, tmp_path, mode, resume, passing,
                              toy_cls_config):
    """What tools/train.py (load_from, --resume PATH) and tools/test.py check before the
    runner loads anything."""
    def check(name):
        cfg = Config(dict(load_from=checkpoints[name], resume=resume, work_dir=str(tmp_path)),
                     filename=toy_cls_config)
        check_run_checkpoint(cfg, toy_runner, mode)

    for name in passing:
        check(name)
    with pytest.raises(CheckpointError, match=r'cut\.pth .*is truncated'):
        check('cut')
    with pytest.raises(CheckpointError, match=r'resnet\.pth does not match this ImageClassifier '
                       r'of mobilemamba_t2_8xb128_in1k_toy\.py: (\d+) of \1 keys do not '
                       r"match .*It holds a model with modules \[bn1, conv1, fc, layer1.*run "
                       r"'resnet18_run'"):
        check('resnet')
    with pytest.raises(CheckpointError, match=r'bare\.pth .*bare MobileMamba backbone.*'
                       r'init_cfg'):
        check('bare')
    with pytest.raises(CheckpointError, match=r'pickled\.pth .*weights_only=True.*refuses.*'
                       r'argparse.*does not fall back'):
        check('pickled')
    if 'in1k' not in passing:
        with pytest.raises(CheckpointError, match=r'in1k\.pth .*2 of \d+ keys do not match '
                           r'\(2 with another shape: head\.'):
            check('in1k')


def test_bare_resume_checks_the_latest_checkpoint(toy_runner, checkpoints, tmp_path,
                                                  toy_cls_config):
    """``--resume`` without a path takes the work dir's last_checkpoint: checked too."""
    (tmp_path / 'last_checkpoint').write_text(checkpoints['cut'])
    cfg = Config(dict(load_from=None, resume=True, work_dir=str(tmp_path)),
                 filename=toy_cls_config)
    with pytest.raises(CheckpointError, match=r'cut\.pth .*truncated'):
        check_run_checkpoint(cfg, toy_runner, 'train')


@pytest.mark.parametrize('name,msg', [
    ('cut', r'cut\.pth \(\d+ bytes\) is truncated'),
    ('resnet', r'resnet\.pth does not match this MobileMamba backbone: (\d+) of \1 keys do not '
     r'match .*modules \[bn1, conv1'),
    ('pickled', r'pickled\.pth holds Python objects')])
def test_backbone_init_cfg_checks(checkpoints, name, msg):
    """The backbone's own init_cfg loader runs the same checks on its file."""
    model = MobileMamba('t2', init_cfg=dict(type='Pretrained', checkpoint=checkpoints[name]))
    with pytest.raises(CheckpointError, match=msg):
        model.init_weights()


def test_backbone_init_cfg_takes_the_classifier_checkpoint(checkpoints):
    model = MobileMamba('t2', init_cfg=dict(type='Pretrained', checkpoint=checkpoints['good']))
    model.init_weights()
    want = torch.load(checkpoints['good'])['state_dict']
    assert all(torch.equal(v, want[f'backbone.{k}']) for k, v in model.state_dict().items())


@pytest.mark.slow
def test_tools_refuse_bad_checkpoints(toy_imagenet, toy_cls_config, checkpoints, tmp_path,
                                      run_tool, data_root_options):
    """End to end: tools/train.py --resume PATH and tools/test.py stop before training or
    testing, naming the file, without TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD."""
    env_flag = 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'
    assert env_flag not in os.environ
    res = run_tool('tools/train.py', toy_cls_config, '--work-dir', str(tmp_path / 'w'),
                   '--resume', checkpoints['cut'], '--cfg-options',
                   *data_root_options(toy_imagenet), check=False)
    assert res.returncode != 0 and 'cut.pth' in res.stderr and 'is truncated' in res.stderr, \
        res.stderr[-3000:]
    assert 'Epoch(train)' not in res.stdout + res.stderr
    res = run_tool('tools/test.py', toy_cls_config, checkpoints['resnet'], '--work-dir',
                   str(tmp_path / 't'), '--cfg-options', *data_root_options(toy_imagenet),
                   check=False)
    assert res.returncode != 0 and 'resnet.pth does not match this ImageClassifier' in \
        res.stderr, res.stderr[-3000:]
    for name, message in (('cut', 'cut.pth (.*) is truncated'),
                          ('missing', 'nope.pth does not exist')):
        path = checkpoints['cut'] if name == 'cut' else str(tmp_path / 'nope.pth')
        res = run_tool('tools/test.py', toy_cls_config, path, '--work-dir', str(tmp_path / 't'),
                       '--cfg-options', *data_root_options(toy_imagenet), check=False)
        assert res.returncode != 0 and re.search(message, res.stderr), res.stderr[-3000:]
        assert 'Epoch(test)' not in res.stdout + res.stderr
