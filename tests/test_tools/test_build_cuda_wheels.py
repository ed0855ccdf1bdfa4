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
