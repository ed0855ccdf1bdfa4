"""mmmobilemamba.utils.cuda_capture: CUDA graph captures from two threads at once (the
training step's and PrefetchBatchesHook's augmentation graphs) take turns, and every
graph replays what it captured."""
import threading

import pytest
import torch

from mmmobilemamba.utils.cuda_capture import _CAPTURE_LOCK, capture

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')


def capture_and_replay(net: torch.nn.Module, inputs: list, scale: float, results: list,
                       errors: list) -> None:
    """Capture a graph of ``net`` (conv + batch norm: cuDNN) for each pair of ``inputs``
    (fresh shapes each), replay it on the pair's second tensor and keep (replayed, eager)
    outputs. No random draws here: a capture in one thread owns the default CUDA
    generator, and the other thread's draws would fail (those are drawn up front)."""
    try:
        torch.cuda.set_device(0)
        for static, x in inputs:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                net(static)  # warm cuDNN up outside the capture
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with capture(graph, stream):
                out = net(static) * scale
            static.copy_(x)
            graph.replay()
            results.append((out.clone(), net(x) * scale))
    except BaseException as error:  # noqa: BLE001  (reported by the test)
        errors.append(error)


def test_captures_from_two_threads_take_turns_and_replay_right():
    results, errors, threads = [], [], []
    for scale in (1.0, 2.0):
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8)).cuda()
        inputs = [(torch.randn(4, 3, 16 + i, 16, device='cuda'),
                   torch.randn(4, 3, 16 + i, 16, device='cuda')) for i in range(30)]
        threads.append(threading.Thread(target=capture_and_replay,
                                        args=(net.eval(), inputs, scale, results, errors)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(results) == 60
    for replayed, eager in results:
        # cuDNN may pick another (TF32) algorithm eagerly than in the capture
        torch.testing.assert_close(replayed, eager, rtol=1e-3, atol=1e-3)
    assert not _CAPTURE_LOCK.locked()


def test_capture_releases_the_lock_when_the_captured_code_fails():
    graph = torch.cuda.CUDAGraph()
    with pytest.raises(RuntimeError, match='broken'):
        with capture(graph):
            raise RuntimeError('broken')
    assert not _CAPTURE_LOCK.locked()
