"""benchmarks/downstream_timing.py small on the CPU: both sides of a case build from their
configs (ours, and the task library's own through its ``mmseg::`` path), train and test on the
synthetic batch, and land in the table and the JSON lines. The H200 table is in
docs/benchmarks.md."""
import json

import pytest


@pytest.mark.parametrize('model', ['fpn', 'retinanet'])
def test_smoke_run_fills_the_table(model, run_tool, tmp_path):
    pytest.importorskip('mmdet' if model == 'retinanet' else 'mmseg')
    out = tmp_path / 'timing.json'
    res = run_tool('benchmarks/downstream_timing.py', '--device', 'cpu', '--scale', '0.15',
                   '--batch', '2', '--warmup', '0', '--iters', '1', '--precisions', 'fp32',
                   '--models', model, '--json', out, timeout=300)
    rows = [line for line in res.stdout.splitlines() if line.startswith(f'| {model} |')]
    assert [r.split(' | ')[1] for r in rows] == ['ours', 'baseline'], res.stdout
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r['side'] for r in records] == ['ours', 'baseline']
    for r in records:
        assert r['batch'] == 2 and r['train_img_s'] > 0 and r['test_img_s'] > 0
        assert r['train_img_s'] == pytest.approx(2 / r['train_s_iter'])
    assert records[1]['config'].startswith('mmseg::' if model == 'fpn' else 'mmdet::')


def test_refuses_cuda_without_a_gpu(run_tool):
    import torch
    if torch.cuda.is_available():
        pytest.skip('a GPU is visible')
    res = run_tool('benchmarks/downstream_timing.py', check=False)
    assert res.returncode != 0 and '--device cpu' in res.output


def test_vary_sizes_cycles_through_padded_detection_batches(run_tool, tmp_path):
    """--vary-sizes: the detector steps through the six padded batch shapes (multiples of
    32), our side only with --no-baseline; eager, so TorchDynamo compiled no graph."""
    pytest.importorskip('mmdet')
    out = tmp_path / 'timing.json'
    run_tool('benchmarks/downstream_timing.py', '--device', 'cpu', '--scale', '0.15',
             '--batch', '1', '--warmup', '0', '--iters', '1', '--precisions', 'fp32',
             '--models', 'retinanet', '--vary-sizes', '--no-baseline', '--json', out,
             timeout=300)
    (record, ) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record['side'] == 'ours' and not record['compiled_backbone']
    assert record['sizes'] == [[128, 192], [128, 192], [96, 192], [128, 160], [96, 192],
                               [128, 160]]
    assert record['dynamo_graphs'] == 0
