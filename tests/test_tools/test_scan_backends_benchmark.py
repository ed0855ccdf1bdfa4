"""benchmarks/scan_backends.py small on the CPU: a backend that runs is timed, one that cannot
run here (mamba_ssm on the CPU) is reported with its reason instead of stopping the table."""
import json


def test_smoke_run_times_and_reports(run_tool, tmp_path):
    out = tmp_path / 'scan.json'
    res = run_tool('benchmarks/scan_backends.py', '--device', 'cpu', '--backends', 'chunked',
                   'mamba_ssm', '--sizes', 's6-stage3', '--scale', '0.01', '--json', out)
    assert '| s6-stage3 | 3 | 544 | 16 | chunked |' in res.stdout
    rows = json.loads(out.read_text())['rows']
    assert [r['backend'] for r in rows] == ['chunked', 'mamba_ssm']
    assert 0 < rows[0]['fwd_ms'] < rows[0]['fwd_bwd_ms']
    assert 'needs CUDA tensors' in rows[1]['error']
