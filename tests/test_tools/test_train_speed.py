"""tools/analysis/train_speed.py: the ImageNet-like JPEG folder it writes, and one short CPU
run of a real classification config through the Runner (the GPU figures:
docs/benchmarks.md)."""
import json
import os.path as osp

import pytest
from PIL import Image

from mmmobilemamba.datasets.jpeg_imagenet import make_jpeg_imagenet

T2 = 'configs/classification/mobilemamba_t2_8xb128_in1k.py'


def test_jpeg_folder_has_imagenet_layout_size_and_weight(tmp_path):
    root = str(tmp_path / 'jpeg')
    kib = make_jpeg_imagenet(root, 24)
    with open(osp.join(root, 'meta', 'train.txt')) as f:
        lines = [line.split() for line in f]
    assert len(lines) == 24 and [int(label) for _, label in lines] == list(range(24))
    for rel, _ in lines:
        w, h = Image.open(osp.join(root, 'train', rel)).size
        assert 400 <= w <= 520 and 300 <= h <= 400
    assert 50 < kib < 100  # ~70 KiB each, as the tool says
    assert make_jpeg_imagenet(root, 24) == pytest.approx(kib)  # reused, same answer


def test_short_cpu_run_reports_loader_and_training_speed(tmp_path, run_tool):
    out = tmp_path / 'speed.json'
    run_tool('tools/analysis/train_speed.py', T2, '--data', tmp_path / 'jpeg', '--images', 16,
             '--batch-size', 8, '--warmup', 1, '--iters', 1, '--workers', 0, '--work-dir',
             tmp_path / 'work', '--json', out, timeout=300)
    result = json.loads(out.read_text())
    assert result['batch'] == 8 and result['precision'] == 'float32'
    assert result['timed_iters'] == 1  # one epoch of 2 batches, the first one warm-up
    assert result['loader_img_s'] > 0 and result['train_img_s'] > 0


def test_detection_configs_are_sent_to_the_downstream_timing(tmp_path, run_tool):
    pytest.importorskip('mmdet')
    out = run_tool('tools/analysis/train_speed.py',
                   'configs/detection/retinanet_mobilemamba_b1.py', '--data', tmp_path / 'jpeg',
                   '--images', 4, check=False)
    assert out.returncode != 0 and 'benchmarks/downstream_timing.py' in out.output


def test_loader_only_times_the_gpu_augment_workers_without_training(tmp_path, run_tool):
    out = tmp_path / 'speed.json'
    run_tool('tools/analysis/train_speed.py', T2, '--data', tmp_path / 'jpeg', '--images', 16,
             '--batch-size', 4, '--warmup', 1, '--iters', 2, '--workers', 1, '--gpu-augment',
             '--loader-only', '--prefetch-ahead', 2, '--work-dir', tmp_path / 'work', '--json',
             out, timeout=300)
    result = json.loads(out.read_text())
    assert result['gpu_augment'] and result['loader_img_s'] > 0 and result['prefetch'] == 2
    assert 'train_img_s' not in result and not (tmp_path / 'work').exists()  # no Runner


def test_prefetch_ahead_needs_the_prefetch_hook(tmp_path, run_tool):
    out = run_tool('tools/analysis/train_speed.py', T2, '--data', tmp_path / 'jpeg', '--images',
                   16, '--prefetch-ahead', 2, check=False)
    assert out.returncode != 0 and 'it comes with --gpu-augment' in out.output
