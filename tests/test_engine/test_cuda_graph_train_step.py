"""The CPU side of tools/train.py --cuda-graph: the grouped AdamW update that the graph
replays equals torch's AdamW over mmengine's paramwise groups, and a run without a GPU is
refused with the fix. The GPU runs: test_cuda_graph_train_step_cuda.py."""
import argparse
import copy

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from torch import nn

from mmmobilemamba.engine.hooks.cuda_graph_train_step_hook import GroupedAdam

OPTIM = dict(optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.05),
             paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0))


def small_model() -> nn.Module:
    """No bias before the BatchNorm: its gradient is rounding noise, which Adam's
    normalised step would blow up to lr either way."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 4, 1))


def test_grouped_adam_steps_as_adamw_over_paramwise_groups():
    torch.manual_seed(0)
    eager_model = small_model()
    graph_model = copy.deepcopy(eager_model)
    eager = build_optim_wrapper(eager_model, copy.deepcopy(OPTIM)).optimizer
    grouped_opt = build_optim_wrapper(graph_model, copy.deepcopy(OPTIM)).optimizer
    assert len(eager.param_groups) == 5  # one group per parameter
    for group in eager.param_groups + grouped_opt.param_groups:
        group['initial_lr'] = group['lr']  # as mmengine's schedulers set it
    grouped = GroupedAdam(grouped_opt)
    assert len(grouped.sets) == 2  # weight decay 0.05 and 0
    weight = torch.randn(1, 4, 6, 6)
    for i in range(4):
        x = torch.randn(2, 3, 8, 8)
        for model in (eager_model, graph_model):
            model.zero_grad()
            (model(x) * weight).sum().backward()
        for group in eager.param_groups + grouped_opt.param_groups:
            group['lr'] = 1e-2 * (4 - i) / 4  # a schedule
        eager.step()
        grouped.update_lr()
        grouped.step()
    for p, q in zip(eager_model.parameters(), graph_model.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)
    a, b = eager.state_dict(), grouped_opt.state_dict()
    assert [sorted(s) for s in a['state'].values()] == [sorted(s) for s in b['state'].values()]
    assert {float(s['step']) for s in b['state'].values()} == {4.0}
    for x, y in zip(a['state'].values(), b['state'].values()):
        torch.testing.assert_close(y['exp_avg_sq'], x['exp_avg_sq'], rtol=1e-5, atol=1e-9)


def test_grouped_adam_refuses_a_diverging_schedule_and_other_optimizers():
    model = small_model()
    opt = build_optim_wrapper(model, copy.deepcopy(OPTIM)).optimizer
    grouped = GroupedAdam(opt)
    opt.param_groups[0]['lr'] *= 0.5  # a group of the decay set leaves the others
    opt.param_groups[0]['params'][0].grad = torch.zeros_like(opt.param_groups[0]['params'][0])
    with pytest.raises(RuntimeError, match='without the CUDA graph'):
        grouped.update_lr()
    with pytest.raises(TypeError, match='optimizer.type=AdamW'):
        GroupedAdam(torch.optim.SGD(model.parameters(), lr=0.1))


@pytest.mark.skipif(torch.cuda.is_available(), reason='the refusal of a CPU run')
def test_cuda_graph_without_a_gpu_names_the_fix(toy_imagenet, tmp_path, run_tool,
                                                data_root_options):
    out = run_tool('tools/train.py', 'configs/classification/mobilemamba_t2_8xb128_in1k_toy.py',
                   '--cuda-graph', '--work-dir', str(tmp_path), '--cfg-options',
                   'train_dataloader.batch_size=4', *data_root_options(toy_imagenet),
                   check=False, timeout=300)
    assert out.returncode != 0
    assert 'CUDAGraphTrainStepHook needs a CUDA device' in out.output
    assert 'Train without --cuda-graph' in out.output


def test_cuda_graph_flag_adds_the_hook(import_tool, repo_root):
    train = import_tool('tools/train.py')
    args = argparse.Namespace(
        config=f'{repo_root}/configs/classification/mobilemamba_s6_8xb128_in1k.py',
        work_dir=None, resume=None, amp=True, amp_dtype=None, auto_scale_lr=False,
        cuda_graph=True, cfg_options=None, launcher='none', local_rank=0)
    cfg = train.build_train_cfg(args)
    assert [h['type'] for h in cfg.custom_hooks] == ['EMAHook', 'CUDAGraphTrainStepHook']
    assert cfg.custom_hooks[0]['ema_type'] == 'ForeachExponentialMovingAverage'


@pytest.mark.parametrize('update_buffers', [True, False])
def test_channels_last_takes_the_ema_copy_along(update_buffers):
    from mmengine.hooks import EMAHook
    from mmengine.model import ExponentialMovingAverage

    from mmmobilemamba.engine.hooks.cuda_graph_train_step_hook import to_channels_last
    model = small_model()
    hook = EMAHook()
    hook.ema_model = ExponentialMovingAverage(model, momentum=0.5,
                                              update_buffers=update_buffers)
    to_channels_last(model, [hook])
    ema = hook.ema_model
    for p, q in zip(model.parameters(), ema.module.parameters()):
        assert q.stride() == p.stride()
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    ema.update_parameters(model)  # the first update copies
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.update_parameters(model)
    torch.testing.assert_close(ema.module[0].weight, model[0].weight - 0.5)


def test_static_batch_takes_each_iterations_values_and_refuses_other_shapes():
    from mmengine.optim import OptimWrapper
    from mmpretrain.structures import DataSample

    from mmmobilemamba.engine.hooks.cuda_graph_train_step_hook import CUDAGraphTrainStep
    model = small_model()
    wrapper = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3))
    step = CUDAGraphTrainStep(model, wrapper, warmup=1, channels_last=True)

    def batch(n=4, size=8):
        samples = [DataSample().set_gt_label(i % 3).set_gt_score(torch.rand(3))
                   for i in range(n)]
        return dict(inputs=torch.randn(n, 3, size, size), data_samples=samples)

    for _ in range(2):  # the buffers are made once, then refilled
        data = batch()
        step._copy_in(data)
        assert torch.equal(step.inputs, data['inputs'])
        assert step.inputs.is_contiguous(memory_format=torch.channels_last)
        for static, sample in zip(step.samples, data['data_samples']):
            assert torch.equal(static.gt_score, sample.gt_score)
            assert torch.equal(static.gt_label, sample.gt_label)
    scores = step.fields['gt_score']
    assert step.samples[1].gt_score.data_ptr() == scores[1].data_ptr()  # views, not copies
    with pytest.raises(RuntimeError, match='drop_last=True'):
        step._copy_in(batch(n=3))
    with pytest.raises(RuntimeError, match='a fixed crop size'):
        step._copy_in(batch(size=10))
