"""The main job on built-in toy data: one small model per task, trained and evaluated on CPU.

    python tools/demo.py                 # what `make demo` runs
    python tools/demo.py --quick         # shortened (tests)

For each task it generates the toy dataset (data/toy/...), trains the task's toy config with
tools/train.py, evaluates it with tools/test.py and the task library's real metric (drawing
predictions into work_dirs/demo/<task>/vis), and prints one summary table that compares each
score with chance.
"""
import argparse
import glob
import os
import os.path as osp
import re
import subprocess
import sys
import time
from typing import Callable, Dict, List, NamedTuple

import numpy as np
from PIL import Image

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


class Task(NamedTuple):
    name: str
    config: str
    data_root: str
    make_data: Callable[[str], object]
    metric: str                       # key printed by tools/test.py
    chance: Callable[[str], float]    # chance level of that metric for the toy val set
    target: Callable[[float], float]  # score the demo must reach, from the chance level
    quick: List[str]                  # --cfg-options that shorten training for --quick


def make_imagenet(root: str):
    from mmmobilemamba.datasets.toy_classification import make_toy_imagenet
    return make_toy_imagenet(root)


def make_coco(root: str):
    from mmmobilemamba.datasets.toy_detection import make_toy_coco
    return make_toy_coco(root)


def make_ade(root: str):
    from mmmobilemamba.datasets.toy_segmentation import make_toy_ade
    return make_toy_ade(root)


def top1_chance(root: str) -> float:
    with open(osp.join(root, 'meta', 'classes.txt')) as f:
        return 100.0 / len(f.read().split())


def constant_miou(root: str) -> float:
    """mIoU (%) of the best constant prediction on the toy ADE val labels (0 is ignored)."""
    labels = [np.asarray(Image.open(p)) for p in sorted(glob.glob(
        osp.join(root, 'ADEChallengeData2016', 'annotations', 'validation', '*.png')))]
    counts = np.bincount(np.concatenate([lb.ravel() for lb in labels]))[1:]
    present = counts[counts > 0]
    return 100.0 * present.max() / present.sum() / len(present)


TASKS: Dict[str, Task] = {
    'classification': Task(
        'classification', 'configs/classification/mobilemamba_t2_8xb128_in1k_toy.py',
        'data/toy/imagenet', make_imagenet, 'accuracy/top1', top1_chance,
        lambda chance: 3 * chance, ['train_cfg.max_epochs=2']),
    'detection': Task(
        'detection', 'configs/detection/retinanet_mobilemamba_b1_toy.py', 'data/toy/coco/',
        make_coco, 'coco/bbox_mAP_50', lambda root: 0.0, lambda chance: 0.3,
        ['train_cfg.max_epochs=1']),
    'segmentation': Task(
        'segmentation', 'configs/segmentation/fpn_mobilemamba_b4_toy.py',
        'data/toy/ade', make_ade, 'mIoU', constant_miou, lambda chance: 2 * chance,
        ['train_cfg.max_iters=4']),
}


def run(cmd: List[str], log_path: str) -> str:
    """Run a tool, streaming its log lines (progress) and keeping them for parsing."""
    print('$', ' '.join(cmd), flush=True)
    lines = []
    with open(log_path, 'w') as log, subprocess.Popen(
            cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as p:
        for line in p.stdout:
            log.write(line)
            lines.append(line)
            if re.search(r'Epoch\((train|val|test)\)|Iter\((train|val|test)\)|Error', line):
                print('   ', line.rstrip()[-150:], flush=True)
    if p.returncode:
        sys.exit(f'{cmd[1]} failed (exit {p.returncode}); full log: {log_path}')
    return ''.join(lines)


def parse_metric(output: str, key: str) -> float:
    found = re.findall(re.escape(key) + r':\s*([-\d.]+)', output)
    if not found:
        sys.exit(f'metric {key!r} not found in the test output')
    return float(found[-1])


def run_task(task: Task, work_root: str, quick: bool, seed: int) -> dict:
    start = time.time()
    root = osp.join(REPO, task.data_root)
    if not osp.exists(root):
        print(f'[{task.name}] generating toy data in {root}', flush=True)
        task.make_data(root)
    work_dir = osp.join(work_root, task.name)
    opts = [f'randomness.seed={seed}', 'randomness.deterministic=True']
    if quick:
        opts += task.quick
    py = sys.executable
    run([py, 'tools/train.py', task.config, '--work-dir', work_dir, '--cfg-options', *opts],
        osp.join(work_dir + '_train.log'))
    ckpts = sorted(glob.glob(osp.join(work_dir, '*.pth')), key=osp.getmtime)
    out = run([py, 'tools/test.py', task.config, ckpts[-1], '--work-dir', work_dir,
               '--show-dir', osp.join(work_dir, 'vis'), '--cfg-options', *opts],
              osp.join(work_dir + '_test.log'))
    chance = task.chance(root)
    score = parse_metric(out, task.metric)
    return dict(task=task.name, metric=task.metric, score=score, chance=chance,
                target=task.target(chance), minutes=(time.time() - start) / 60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--tasks', nargs='+', choices=list(TASKS), default=list(TASKS))
    parser.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'demo'))
    parser.add_argument('--quick', action='store_true',
                        help='train only a few iterations (checks the pipeline, not learning)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    rows = [run_task(TASKS[name], args.work_dir, args.quick, args.seed) for name in args.tasks]
    print('\n| task | metric | score | chance | target | minutes | learned |')
    print('|---|---|---|---|---|---|---|')
    for r in rows:
        r['learned'] = r['score'] >= r['target']
        print(f"| {r['task']} | {r['metric']} | {r['score']:.3f} | {r['chance']:.3f} | "
              f"{r['target']:.3f} | {r['minutes']:.1f} | {'yes' if r['learned'] else 'NO'} |")
    print(f'\nVisualisations: {args.work_dir}/<task>/vis')
    if not args.quick and not all(r['learned'] for r in rows):
        sys.exit('the demo did not beat its targets')


if __name__ == '__main__':
    main()
