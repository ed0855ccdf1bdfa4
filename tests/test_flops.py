"""tools/analysis/get_flops.py reproduces the spec's FLOPs (scan counted as
9*B*L*D*N + B*D*L, one multiply-add = one FLOP) within 0.5% for every variant."""
import os.path as osp
import re
import subprocess
import sys

import pytest

from conftest import REPO

SPEC = {'t2': (192, 254.7e6, 8_836_890), 't4': (192, 412.5e6, 14_176_090),
        's6': (224, 652.3e6, 15_036_632), 'b1': (256, 1079.8e6, 17_122_849),
        'b2': (384, 2427.1e6, 17_122_849), 'b4': (512, 4313.3e6, 17_122_849)}


@pytest.mark.parametrize('arch', sorted(SPEC))
def test_get_flops_matches_spec(arch):
    res, flops, params = SPEC[arch]
    out = subprocess.run([sys.executable, osp.join(REPO, 'tools/analysis/get_flops.py'), arch],
                         capture_output=True, text=True, check=True).stdout
    assert f'input: 1x3x{res}x{res}' in out
    assert int(re.search(r'params: ([\d,]+)', out).group(1).replace(',', '')) == params
    got = float(re.search(r'flops: ([\d,.]+)', out).group(1).replace(',', ''))
    assert abs(got - flops) / flops <= 0.005, (got, flops)
