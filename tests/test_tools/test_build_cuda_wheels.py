"""tools/build_cuda_wheels.sh and its one-architecture nvcc, without a GPU: the nvcc wrapper
keeps only the local card's targets (checked against a stand-in nvcc that prints its
arguments), and the script refuses a CPU-only torch with the way out. The build itself ran on
an H200 (docs/logs, cited in docs/get_started.md)."""
import os
import subprocess
import sys

import pytest

MAMBA_TARGETS = [f'arch=compute_{a},code=sm_{a}' for a in (75, 80, 87, 90, 100, 120, 103)]


@pytest.fixture
def fake_cuda(tmp_path):
    nvcc = tmp_path / 'bin' / 'nvcc'
    nvcc.parent.mkdir()
    nvcc.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    nvcc.chmod(0o755)
    return str(tmp_path)


def run_nvcc(repo_root, fake_cuda, args, arch='90'):
    env = dict(os.environ, CUDA_HOME=fake_cuda)
    if arch:
        env['MMM_CUDA_ARCH'] = arch
    return subprocess.run([os.path.join(repo_root, 'tools', 'nvcc_one_arch'), *args], env=env,
                          capture_output=True, text=True)


def test_nvcc_wrapper_keeps_only_the_local_architecture(repo_root, fake_cuda):
    args = ['-O3', '-c', 'scan.cu']
    for target in MAMBA_TARGETS:
        args += ['-gencode', target]
    args += ['--generate-code=arch=compute_80,code=sm_80', '-gencode=arch=compute_90,code=sm_90',
             '-o', 'scan.o']
    res = run_nvcc(repo_root, fake_cuda, args)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split('\n')[:-1] == [
        '-O3', '-c', 'scan.cu', '-gencode', 'arch=compute_90,code=sm_90',
        '-gencode=arch=compute_90,code=sm_90', '-o', 'scan.o']


def test_nvcc_wrapper_needs_the_architecture(repo_root, fake_cuda):
    res = run_nvcc(repo_root, fake_cuda, ['-c', 'a.cu'], arch=None)
    assert res.returncode != 0 and 'MMM_CUDA_ARCH' in res.stderr


def test_build_script_refuses_cpu_torch_and_unknown_packages(repo_root, run_tool):
    env = {'PYTHON': sys.executable}
    res = run_tool('tools/build_cuda_wheels.sh', 'mmcv', check=False, env=env)
    assert res.returncode != 0
    assert 'needs a CUDA build of torch and a visible GPU' in res.output
    assert 'tools/setup_env.sh' in res.output
    res = run_tool('tools/build_cuda_wheels.sh', 'causal-conv1d', check=False, env=env)
    assert res.returncode == 2 and "unknown argument 'causal-conv1d'" in res.output


STUB_PYTHON = '''#!/bin/sh
# Stands in for a CUDA machine's python: answers the script's torch probe, logs pip calls.
if [ "$1" = "-" ]; then
    if [ "$#" -eq 1 ]; then echo "2.11.0+cu130 13.0 90"; fi  # the probe; else the final check
    exit 0
fi
if [ "$1" = "-c" ]; then exit 1; fi  # torch < 2.14: no C++20 wrapper
echo "$@" >> "$PIP_LOG"
'''


def test_a_cached_wheel_is_installed_without_building(tmp_path, repo_root, run_tool):
    """The second run on the same torch and card: the wheel in the cache is installed as it
    is (no download, no build), into --target. torch, nvcc and pip are stand-ins here."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    for name, text in (('python', STUB_PYTHON),
                       ('nvcc', '#!/bin/sh\necho "Cuda compilation tools, release 13.0, V13.0.88"\n')):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    wheels = tmp_path / 'cache' / 'torch2.11.0+cu130-sm90'
    wheels.mkdir(parents=True)
    wheel = wheels / 'mmcv-2.1.0-cp312-cp312-linux_x86_64.whl'
    wheel.write_bytes(b'')
    log = tmp_path / 'pip.log'
    env = {'PYTHON': str(bin_dir / 'python'), 'PIP_LOG': str(log),
           'PATH': f'{bin_dir}:{os.environ["PATH"]}'}
    res = run_tool('tools/build_cuda_wheels.sh', '--cache', tmp_path / 'cache', '--target',
                   tmp_path / 'site', 'mmcv', env=env)
    assert f'reusing {wheel}' in res.output and 'building' not in res.output
    assert log.read_text().split() == [
        '-m', 'pip', 'install', '-q', '--no-deps', '--no-index', '--force-reinstall',
        '--upgrade', '--target', str(tmp_path / 'site'), str(wheel)]
