"""tools/train.py then tools/test.py on the toy configs of every task (slow): each trains a
few steps on generated data, writes its checkpoint and is evaluated with the task's real
metric; for classification also the fused test and the KD config's two losses."""
import glob
import json
import os.path as osp
import pickle
import re

import pytest
import torch

CLS = 'configs/classification'
TOY = f'{CLS}/mobilemamba_t2_8xb128_in1k_toy.py'
TOY_KD = f'{CLS}/mobilemamba_t2_8xb128_in1k_kd-1000e_toy.py'
RETINA, MASK = 'retinanet_mobilemamba_b1', 'mask-rcnn_mobilemamba_b1'
SSD, SSD512 = 'ssdlite_mobilemamba_b1', 'ssdlite_mobilemamba_b1_512'
SEG_METHODS = ('deeplabv3', 'fpn', 'pspnet')
SEG_METRICS = re.compile(r'aAcc: ([\d.]+)\s+mIoU: ([\d.]+)\s+mAcc: ([\d.]+)')


# ---------------------------------------------------------------------- classification
@pytest.fixture(scope='module')
def toy_data(tmp_path_factory) -> str:
    """Toy ImageNet: 4 classes x (4 train + 4 val) images of 64 px."""
    from mmmobilemamba.datasets.toy_classification import make_toy_imagenet
    root = str(tmp_path_factory.mktemp('toy') / 'imagenet')
    make_toy_imagenet(root, num_classes=4, train_per_class=4, val_per_class=4, size=64)
    return root


@pytest.fixture(scope='module')
def toy_checkpoint(toy_data, tmp_path_factory, run_tool, data_root_options) -> str:
    """Two epochs of one iteration (16 images) of the toy config with tools/train.py."""
    work_dir = str(tmp_path_factory.mktemp('toy_train'))
    run_tool('tools/train.py', TOY, '--work-dir', work_dir, '--cfg-options',
             'train_cfg.max_epochs=2', *data_root_options(toy_data), timeout=240)
    ckpt = osp.join(work_dir, 'epoch_2.pth')
    assert osp.isfile(ckpt)
    return ckpt


@pytest.fixture(scope='module')
def run_test(run_tool, data_root_options):
    """``run_test(config, ckpt, data_root, out, *extra)``: tools/test.py with ``--out``;
    returns the printed top-1."""
    def test(config: str, ckpt: str, data_root: str, out: str, *extra: str) -> float:
        text = run_tool('tools/test.py', config, ckpt, '--out', out, '--work-dir',
                        osp.dirname(out), *extra, '--cfg-options',
                        *data_root_options(data_root), timeout=240).output
        top1 = re.findall(r'accuracy/top1: ([0-9.]+)', text)
        assert top1, text[-3000:]
        return float(top1[-1])
    return test


@pytest.fixture(scope='module')
def toy_predictions(toy_data, toy_checkpoint, tmp_path_factory, run_test) -> tuple:
    """tools/test.py on the toy checkpoint: (top-1, --out dump)."""
    out = str(tmp_path_factory.mktemp('toy_test') / 'preds.pkl')
    return run_test(TOY, toy_checkpoint, toy_data, out), out


@pytest.mark.slow
def test_toy_train_writes_a_checkpoint(toy_checkpoint):
    ckpt = torch.load(toy_checkpoint, map_location='cpu', weights_only=False)
    assert ckpt['meta']['epoch'] == 2
    # EMAHook saves the EMA weights as the state_dict, the raw ones beside them
    assert 'ema_state_dict' in ckpt and 'backbone.patch_embed.0.c.weight' in ckpt['state_dict']


@pytest.mark.slow
def test_toy_test_reports_top1(toy_predictions):
    top1, out = toy_predictions
    assert 0.0 <= top1 <= 100.0 and osp.isfile(out)


@pytest.mark.slow
def test_toy_fused_test_equals_unfused(toy_data, toy_checkpoint, toy_predictions, tmp_path,
                                       run_test):
    top1, plain = toy_predictions
    fused = str(tmp_path / 'preds.pkl')
    assert run_test(TOY, toy_checkpoint, toy_data, fused, '--fuse') == top1
    with open(plain, 'rb') as f:
        a = pickle.load(f)
    with open(fused, 'rb') as f:
        b = pickle.load(f)
    assert len(a) == len(b) == 16
    for x, y in zip(a, b):
        assert x['img_path'] == y['img_path']
        assert x['pred_label'].tolist() == y['pred_label'].tolist()
        torch.testing.assert_close(x['pred_score'], y['pred_score'], atol=1e-5, rtol=0)


@pytest.mark.slow
def test_toy_kd_trains_and_logs_both_losses(toy_data, tmp_path, run_tool, data_root_options):
    work_dir = str(tmp_path / 'kd')
    run_tool('tools/train.py', TOY_KD, '--work-dir', work_dir, '--cfg-options',
             'train_cfg.max_epochs=2', 'default_hooks.logger.interval=1',
             *data_root_options(toy_data), timeout=240)
    logs = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    assert logs
    with open(logs[0]) as f:
        records = [json.loads(line) for line in f]
    train = [r for r in records if 'loss_kd' in r]
    assert train and all('loss_cls' in r for r in train)
    assert all(r['loss'] == pytest.approx(r['loss_cls'] + r['loss_kd'], rel=1e-3)
               for r in train)
    ckpt = torch.load(osp.join(work_dir, 'epoch_2.pth'), map_location='cpu',
                      weights_only=False)
    assert not any('teacher' in k for k in ckpt['state_dict'])


# --------------------------------------------------------------------------- detection
@pytest.mark.slow
@pytest.mark.parametrize('name, metrics', [
    (RETINA, ('bbox', )), (MASK, ('bbox', 'segm')), (SSD, ('bbox', )), (SSD512, ('bbox', ))])
def test_detection_toy_train_then_test(tmp_path, name, metrics, repo_root, run_tool,
                                       data_root_options):
    pytest.importorskip('mmdet', reason='mmdet (and a compiled mmcv) are needed for detection')
    from mmmobilemamba.datasets.toy_detection import make_toy_coco
    root = make_toy_coco(str(tmp_path / 'coco'), num_train=2, num_val=2, size=128, seed=0)
    config = osp.join(repo_root, 'configs', 'detection', name + '_toy.py')
    data = data_root_options(root, config)
    work = str(tmp_path / 'work')
    run_tool('tools/train.py', config, '--work-dir', work, '--cfg-options',
             'train_cfg.max_epochs=1', 'train_cfg.val_begin=100', 'train_dataloader.batch_size=2',
             *data, cwd=tmp_path)  # 1 step
    # after 1 step no score passes the usual threshold; keep every box so metrics exist
    thr = 'model.test_cfg.rcnn.score_thr=0' if name == MASK else 'model.test_cfg.score_thr=0'
    out = run_tool('tools/test.py', config, osp.join(work, 'epoch_1.pth'), '--work-dir', work,
                   '--cfg-options', thr, *data, cwd=tmp_path).output
    for metric in metrics:
        assert f'coco/{metric}_mAP_50' in out, out[-3000:]


# ------------------------------------------------------------------------ segmentation
@pytest.fixture(scope='module')
def toy_ade(tmp_path_factory) -> str:
    """Toy ADE20K: 8 training and 2 validation images."""
    from mmmobilemamba.datasets.toy_segmentation import make_toy_ade
    return make_toy_ade(str(tmp_path_factory.mktemp('toy_ade')), num_train=8, num_val=2)


@pytest.mark.slow
@pytest.mark.parametrize('method', SEG_METHODS)
def test_segmentation_toy_train_then_test(toy_ade, tmp_path, method, repo_root, run_tool,
                                          data_root_options):
    """A few iterations on the CPU, then tools/test.py prints aAcc, mIoU and mAcc."""
    config = osp.join(repo_root, 'configs', 'segmentation', f'{method}_mobilemamba_b4_toy.py')
    work = str(tmp_path / 'work')
    roots = data_root_options(toy_ade)
    iters = 2
    run_tool('tools/train.py', config, '--work-dir', work, '--cfg-options', *roots,
             f'train_cfg.max_iters={iters}', 'train_cfg.val_begin=100',
             'train_dataloader.batch_size=2', cwd=tmp_path)
    checkpoint = osp.join(work, f'iter_{iters}.pth')
    assert osp.isfile(checkpoint)
    out = run_tool('tools/test.py', config, checkpoint, '--work-dir', work,
                   '--cfg-options', *roots, cwd=tmp_path).output
    found = SEG_METRICS.findall(out)
    assert found, out[-3000:]
    aacc, miou, macc = map(float, found[-1])
    print(f'{method} toy ({iters} iters): aAcc {aacc:.2f}  mIoU {miou:.2f}  mAcc {macc:.2f}')
    assert 0 <= miou <= 100 and 0 <= aacc <= 100 and 0 <= macc <= 100
