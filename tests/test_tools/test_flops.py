"""tools/analysis/get_flops.py prints every variant's exact parameter count and the FLOPs of
the paper's table (given here to 0.1M) within 0.02%, their rounding, counting the selective
scan as 9*B*L*D*N + B*D*L and one multiply-add as one FLOP (docs/architecture.md, "FLOP
counting")."""
import re

import pytest

# resolution, FLOPs, parameters
PAPER = {'t2': (192, 254.7e6, 8_836_890), 't4': (192, 412.5e6, 14_176_090),
         's6': (224, 652.3e6, 15_036_632), 'b1': (256, 1079.8e6, 17_122_849),
         'b2': (384, 2427.1e6, 17_122_849), 'b4': (512, 4313.3e6, 17_122_849)}


@pytest.mark.parametrize('arch', sorted(PAPER))
def test_get_flops_matches_paper(arch, run_tool):
    res, flops, params = PAPER[arch]
    out = run_tool('tools/analysis/get_flops.py', arch).stdout
    assert f'input: 1x3x{res}x{res}' in out
    assert int(re.search(r'params: ([\d,]+)', out).group(1).replace(',', '')) == params
    got = float(re.search(r'flops: ([\d,.]+)', out).group(1).replace(',', ''))
    assert abs(got - flops) / flops <= 0.0002, (got, flops)
