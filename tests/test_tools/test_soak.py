"""benchmarks/soak.py: repeated train + validate cycles on the toy ImageNet, reporting
each cycle's resident memory and metric, and their drift after the warm-up cycles."""
import json

import pytest


@pytest.mark.slow
def test_soak_tool_reports_rss_and_metric(toy_imagenet, tmp_path, run_tool):
    out = tmp_path / 'soak.json'
    run_tool('benchmarks/soak.py', '--cycles', '3', '--warmup-cycles', '1', '--data-root',
             toy_imagenet, '--work-dir', str(tmp_path / 'w'), '--out', str(out),
             '--cfg-options', 'train_dataloader.batch_size=2')
    result = json.loads(out.read_text())
    records, s = result['records'], result['summary']
    assert [r['cycle'] for r in records] == [1, 2, 3]
    assert [r['iter'] for r in records] == [4, 8, 12]  # 8 images / 2 per batch per cycle
    assert all(r['metric_name'] == 'accuracy/top1' and 0 <= r['metric'] <= 100
               for r in records)
    assert all(200 < r['rss_mb'] < 20000 for r in records)
    assert s['cycles'] == 3 and s['rss_start_mb'] == records[0]['rss_mb']
    assert s['rss_growth_mb'] == pytest.approx(records[-1]['rss_mb'] - records[0]['rss_mb'])
    assert s['rss_mb_per_cycle_after_warmup'] == pytest.approx(
        records[2]['rss_mb'] - records[1]['rss_mb'])  # two points after warm-up: their slope
    assert s['metric_drift_after_warmup'] == pytest.approx(
        records[2]['metric'] - records[1]['metric'])
    assert result['settings']['train_images'] == 8 and result['settings']['batch_size'] == 2
    assert (tmp_path / 'w' / 'epoch_3.pth').exists()
