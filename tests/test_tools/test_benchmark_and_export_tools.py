"""tools/analysis/benchmark.py and tools/deployment/pytorch2onnx.py as users run them: their
--help, a CPU latency measurement in each formulation and runtime, and an export whose default
size is the variant's resolution."""
import json

import pytest

from mmmobilemamba.models import MobileMamba


def test_benchmark_help(run_tool):
    out = run_tool('tools/analysis/benchmark.py', '--help').output
    assert out.startswith('usage:') and '--export-formulation' in out


def test_export_default_size_is_the_variants_resolution(run_tool, tmp_path):
    out = run_tool('tools/deployment/pytorch2onnx.py', '--help').output
    assert out.startswith('usage:')
    for arch, res in MobileMamba.arch_resolution.items():
        assert f'{arch} {res}' in ' '.join(out.split())  # argparse wraps the help
    onnx = tmp_path / 'b1.onnx'
    out = run_tool('tools/deployment/pytorch2onnx.py', '--arch', 'b1', '--no-verify',
                   '--output-file', str(onnx)).output
    assert 'input (batch, 3, 256, 256)' in out and onnx.stat().st_size > 1e6


def test_export_cli_verifies_its_file(run_tool, tmp_path):
    out = run_tool('tools/deployment/pytorch2onnx.py', '--arch', 't2', '--shape', '64', '96',
                   '--output-file', str(tmp_path / 't2.onnx')).output
    err = float(out.split('max relative error ')[1].split()[0])
    assert 0 <= err <= 1e-4


def test_cpu_latency_in_each_formulation_and_runtime(import_tool, tmp_path):
    pytest.importorskip('onnxruntime')
    benchmark = import_tool('tools/analysis/benchmark.py')
    base = ['--arch', 't2', '--device', 'cpu', '--img-size', '64', '--threads', '1',
            '--warmup', '1', '--repeats', '2']
    rows = (benchmark.main(base + ['--backend', 'chunked'])
            + benchmark.main(base + ['--backend', 'chunked', '--export-formulation'])
            + benchmark.main(base + ['--runtime', 'onnxruntime', '--runs', '2',
                                     '--json', str(tmp_path / 'ort.json')]))
    assert [(r['formulation'], r['runtime'], r['backend']) for r in rows] == [
        ('default', 'torch', 'chunked'), ('export', 'torch', 'chunked'),
        ('export', 'onnxruntime', '-')]
    assert [len(r['runs']) for r in rows] == [1, 1, 2]
    for run in (run for r in rows for run in r['runs']):
        assert 0 < run['min_ms'] <= run['median_ms'] < 10_000
        assert run['img_per_s'] == pytest.approx(1e3 / run['median_ms'])
    saved = json.loads((tmp_path / 'ort.json').read_text())
    assert saved['results'] == rows[2:] and saved['env']['threads'] == 1
