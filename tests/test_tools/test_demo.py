"""`tools/demo.py --quick` (the shortened `make demo`): all three tasks train, evaluate with
their real metric, draw predictions and land in one summary table (about 3 min on 2 cores).

--quick trains 2 epochs / 1 epoch / 4 iterations, which checks the pipeline, not learning:
only the score that is meaningful that early is held to beating chance (see the asserts).
"""
import glob
import os.path as osp
import re

import pytest

ROW = re.compile(r'^\| (\w+) \| (\S+) \| ([-\d.]+) \| ([-\d.]+) \| ([-\d.]+) \| ([\d.]+) \| '
                 r'(yes|NO) \|$', re.M)
METRICS = {'classification': 'accuracy/top1', 'detection': 'coco/bbox_mAP_50',
           'segmentation': 'mIoU'}


@pytest.mark.slow
def test_quick_demo_prints_the_summary_table(tmp_path, run_tool):
    pytest.importorskip('mmdet')
    pytest.importorskip('mmseg')
    res = run_tool('tools/demo.py', '--quick', '--work-dir', tmp_path, cwd=tmp_path,
                   timeout=1200)
    out = res.output
    assert '| task | metric | score | chance | target | minutes | learned |' in out
    rows = {m[0]: m[1:] for m in ROW.findall(res.stdout)}
    assert sorted(rows) == sorted(METRICS), res.stdout[-2000:]
    for task, (metric, score, chance, target, minutes, _) in rows.items():
        score, chance, target = float(score), float(chance), float(target)
        assert metric == METRICS[task]
        assert 0 <= score <= 100 and 0 <= chance < target
        assert score >= chance, (task, score, chance)  # never worse than chance
        # the predictions were drawn by the task library's visualisation hook
        drawn = glob.glob(osp.join(str(tmp_path), task, 'vis', '**', '*.[jp][pn]g'),
                          recursive=True)
        assert drawn, f'no visualisations for {task}'
    # measured: mIoU 21.4 vs the best constant predictor's 7.0 after 4 iterations, and
    # bbox AP50 0.056 vs 0 after one epoch; classification is still at chance (25%) after 2
    seg = rows['segmentation']
    assert float(seg[1]) > float(seg[2])
    assert float(rows['detection'][1]) > 0
