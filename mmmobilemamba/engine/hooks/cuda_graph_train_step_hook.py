"""Train with the whole step (forward, loss, backward, clipping, AdamW) as one CUDA graph."""
import math
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import BaseAveragedModel, is_model_wrapper
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import HOOKS
from mmengine.runner import EpochBasedTrainLoop
from torch import nn
from torch.optim.adam import adam

from mmmobilemamba.utils.cuda_capture import capture

HYPERPARAMETERS = ('weight_decay', 'betas', 'eps', 'amsgrad', 'maximize',
                   'decoupled_weight_decay')


def to_channels_last(model: nn.Module, hooks: List[Hook]) -> None:
    """Put ``model`` and the EMA copies of ``hooks`` (``EMAHook``) in channels-last memory
    format. The copies follow so that the multi-tensor EMA update finds equal strides (its
    fast path); their ``avg_parameters`` then point at the converted tensors."""
    model.to(memory_format=torch.channels_last)
    for hook in hooks:
        averaged = getattr(hook, 'ema_model', None)
        if isinstance(averaged, BaseAveragedModel):
            averaged.module.to(memory_format=torch.channels_last)
            averaged.avg_parameters = (averaged.module.state_dict() if averaged.update_buffers
                                       else dict(averaged.module.named_parameters()))


class GroupedAdam:
    """The optimizer's Adam/AdamW update as one fused kernel per set of param groups that
    share their hyperparameters, with the learning rate read from a device tensor.

    mmengine's ``paramwise_cfg`` makes one param group per parameter (303 for S6) unless
    ``MergedGroupsOptimWrapperConstructor`` merges them; stepping them one by one would put
    thousands of small kernels into the graph. Groups with the same ``initial_lr`` and
    hyperparameters always get the same learning rate from mmengine's schedulers, so each
    set takes one ``torch.optim.adam.adam(fused=True)`` call. The optimizer keeps its groups
    and its state (``exp_avg``, ``exp_avg_sq``, ``step``), so checkpoints are those of the
    eager run and resume either way.
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        if not isinstance(optimizer, torch.optim.Adam):  # AdamW is an Adam
            raise TypeError(
                f'CUDAGraphTrainStepHook steps Adam/AdamW, got {type(optimizer).__name__}; '
                'use optim_wrapper.optimizer.type=AdamW or train without the CUDA graph.')
        self.optimizer = optimizer
        sets: Dict[tuple, List[dict]] = defaultdict(list)
        for group in optimizer.param_groups:
            if group.get('differentiable') or isinstance(group['lr'], torch.Tensor):
                raise ValueError('CUDAGraphTrainStepHook needs float learning rates and a '
                                 'non-differentiable optimizer.')
            sets[(group.get('initial_lr', group['lr']), ) + self._hyperparameters(group)
                 ].append(group)
        self.sets = list(sets.values())
        self.hyperparameters = [self._hyperparameters(s[0]) for s in self.sets]
        device = optimizer.param_groups[0]['params'][0].device
        self.lrs = [torch.tensor(float(s[0]['lr']), device=device) for s in self.sets]
        for group in optimizer.param_groups:
            for p in group['params']:
                state = optimizer.state[p]
                if not state:
                    state['step'] = torch.zeros((), device=p.device)
                    state['exp_avg'] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state['exp_avg_sq'] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    if group['amsgrad']:
                        state['max_exp_avg_sq'] = torch.zeros_like(p)
                else:  # resumed: the fused kernel wants device step counts and the
                    # moments in the parameter's memory layout (it indexes them alike)
                    state['step'] = state['step'].to(p.device, torch.float32)
                    for key, value in state.items():
                        if key != 'step' and value.stride() != p.stride():
                            state[key] = torch.empty_like(p).copy_(value)

    @staticmethod
    def _hyperparameters(group: dict) -> tuple:
        return tuple(group.get(k) for k in HYPERPARAMETERS)

    def update_lr(self) -> None:
        """Copy the groups' (scheduled) learning rates into the graph's lr tensors."""
        for groups, lr, hyper in zip(self.sets, self.lrs, self.hyperparameters):
            values = {g['lr'] for g in groups}
            if len(values) != 1 or any(self._hyperparameters(g) != hyper for g in groups):
                raise RuntimeError(
                    'CUDAGraphTrainStepHook: a scheduler changed param groups that the graph '
                    'steps together differently (or changed a hyperparameter other than lr); '
                    'train this schedule without the CUDA graph.')
            lr.fill_(values.pop())

    def step(self) -> None:
        for groups, lr in zip(self.sets, self.lrs):
            params = [p for g in groups for p in g['params'] if p.grad is not None]
            if not params:
                continue
            states = [self.optimizer.state[p] for p in params]
            group = groups[0]
            adam(params, [p.grad for p in params], [s['exp_avg'] for s in states],
                 [s['exp_avg_sq'] for s in states],
                 [s['max_exp_avg_sq'] for s in states] if group['amsgrad'] else [],
                 [s['step'] for s in states], fused=True,
                 decoupled_weight_decay=group.get('decoupled_weight_decay', False),
                 amsgrad=group['amsgrad'], beta1=group['betas'][0], beta2=group['betas'][1],
                 lr=lr, weight_decay=group['weight_decay'], eps=group['eps'],
                 maximize=group['maximize'])


class CUDAGraphTrainStep:
    """Stands in for ``model.train_step``: the data preprocessor (normalisation, Mixup/
    CutMix) runs eagerly, its output is copied into static buffers, and the rest of the step
    replays a CUDA graph. The first ``warmup`` calls run the same step eagerly on a side
    stream (real iterations, as PyTorch's capture recipe needs), the next one captures.

    With ``defer_outputs`` each call returns the previous step's losses (and logs its grad
    norm) as floats, copied to the host behind the GPU's work, so the host never waits for
    the step it has just launched; the first call returns ``{}``. A call made with
    ``flush`` set also waits for its own step and returns that step's values instead when
    its loss is not finite, so the finite-loss check sees every step before a checkpoint.
    """

    def __init__(self, model: nn.Module, optim_wrapper: OptimWrapper, warmup: int,
                 channels_last: bool, defer_outputs: bool = True) -> None:
        self.model, self.optim_wrapper, self.warmup = model, optim_wrapper, warmup
        self.defer_outputs, self.flush = defer_outputs, False
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.dtype = optim_wrapper.cast_dtype if isinstance(optim_wrapper,
                                                            AmpOptimWrapper) else None
        self.adam = GroupedAdam(optim_wrapper.optimizer)
        self.calls = 0
        self.graph: Optional[torch.cuda.CUDAGraph] = None
        self.stream: Optional[torch.cuda.Stream] = None  # made at the first warm-up call
        self.inputs: Optional[torch.Tensor] = None
        self.samples: list = []
        self.fields: Dict[str, torch.Tensor] = {}
        self.outputs: Tuple[dict, Optional[torch.Tensor]] = ({}, None)
        self.staged: Optional[Tuple[List[str], torch.Tensor, torch.cuda.Event]] = None

    def _copy_in(self, data: dict) -> None:
        inputs, samples = data['inputs'], data['data_samples']
        fields = {k: torch.stack([s.get(k) for s in samples]) for k in samples[0].keys()
                  if isinstance(samples[0].get(k), torch.Tensor)}
        if self.inputs is None:
            self.inputs = torch.empty_like(inputs, memory_format=self.memory_format)
            self.fields = {k: torch.empty_like(v) for k, v in fields.items()}
            self.samples = [s.clone() for s in samples]
            for i, sample in enumerate(self.samples):
                for key, value in self.fields.items():
                    sample.set_field(value[i], key)
        got = (tuple(inputs.shape), {k: tuple(v.shape) for k, v in fields.items()})
        want = (tuple(self.inputs.shape), {k: tuple(v.shape) for k, v in self.fields.items()})
        if got != want:
            raise RuntimeError(
                f'CUDAGraphTrainStepHook: the graph was captured for batch {want}, this '
                f'iteration brought {got}. A CUDA graph needs the same shapes every '
                'iteration: a fixed crop size, train_dataloader.drop_last=True and the same '
                'labels per sample. Train variable-size batches without the CUDA graph.')
        self.inputs.copy_(inputs)
        for key, value in fields.items():
            self.fields[key].copy_(value)

    def _step(self) -> Tuple[dict, Optional[torch.Tensor]]:
        self.adam.optimizer.zero_grad(set_to_none=True)  # backward allocates in-graph
        with torch.autocast('cuda', dtype=self.dtype or torch.float32,
                            enabled=self.dtype is not None, cache_enabled=False):
            losses = self.model._run_forward(
                dict(inputs=self.inputs, data_samples=self.samples), mode='loss')
        loss, log_vars = self.model.parse_losses(losses)
        loss.backward()
        grad_norm = None
        if getattr(self.optim_wrapper, 'clip_grad_kwargs', None):
            params = [p for g in self.adam.optimizer.param_groups for p in g['params']
                      if p.grad is not None]
            grad_norm = self.optim_wrapper.clip_func(params,
                                                     **self.optim_wrapper.clip_grad_kwargs)
        self.adam.step()
        return log_vars, grad_norm

    def __call__(self, data: dict, optim_wrapper: OptimWrapper) -> Dict[str, float]:
        with optim_wrapper.optim_context(self.model):
            data = self.model.data_preprocessor(data, True)
        self._copy_in(data)
        self.adam.update_lr()
        if self.calls < self.warmup:
            self.stream = self.stream or torch.cuda.Stream()
            self.stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.stream):
                self.outputs = self._step()
            torch.cuda.current_stream().wait_stream(self.stream)
        else:
            if self.graph is None:
                self.graph = torch.cuda.CUDAGraph()  # other threads (PrefetchBatchesHook)
                with capture(self.graph):
                    self.outputs = self._step()
            self.graph.replay()
        self.calls += 1
        optim_wrapper._inner_count += 1
        staged, previous = self._stage(*self.outputs), self.staged
        if not self.defer_outputs:
            return self._report(staged)
        self.staged = staged
        if self.flush and not math.isfinite(self._read(staged).get('loss', 0.0)):
            previous = staged  # report this step now: it must not reach a checkpoint
        return self._report(previous) if previous is not None else {}

    @staticmethod
    def _stage(log_vars: dict, grad_norm: Optional[torch.Tensor]
               ) -> Tuple[List[str], torch.Tensor, torch.cuda.Event]:
        """Queue a copy of the step's values to pinned host memory behind its kernels."""
        names = list(log_vars) + ([None] if grad_norm is not None else [])
        values = [v.detach().float().reshape(()) for v in log_vars.values()]
        values = torch.stack(values + ([grad_norm.detach().float().reshape(())]
                                       if grad_norm is not None else []))
        host = torch.empty(values.shape, pin_memory=True).copy_(values, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        return names, host, event

    @staticmethod
    def _read(staged: Tuple[List[str], torch.Tensor, torch.cuda.Event]) -> dict:
        names, host, event = staged
        event.synchronize()
        return dict(zip(names, host.tolist()))

    def _report(self, staged: Tuple[List[str], torch.Tensor, torch.cuda.Event]) -> dict:
        """The staged step's losses; its grad norm goes to the message hub, as the
        OptimWrapper logs it."""
        values = self._read(staged)
        grad_norm = values.pop(None, None)
        if grad_norm is not None:
            self.optim_wrapper.message_hub.update_scalar(
                f'train/{self.optim_wrapper.grad_name}', grad_norm)
        return values


@HOOKS.register_module()
class CUDAGraphTrainStepHook(Hook):
    """Replace ``model.train_step`` by a CUDA-graph replay of the whole step.

    A MobileMamba classifier is small: its eager step launches thousands of kernels and the
    GPU waits for the host (the bare S6 bf16 step: 1.8k img/s eager on an H200, 7.5k as one
    graph on an H100; docs/benchmarks.md). Logging, the finite-loss check, EMA, checkpoints,
    validation and resume see the usual outputs and optimizer state.

    Losses reach the hooks one iteration late (``defer_outputs``): iteration ``i`` logs and
    checks step ``i - 1``, so the host prepares the next batch while the GPU trains. The
    last iteration of each epoch, of training and each iteration checkpoint also wait for
    their own step, and a non-finite one stops the run there, before it is saved.

    Needs one CUDA device (no DDP), the same batch shapes every iteration (classification:
    fixed crops, ``drop_last=True``), float32 or bfloat16 AMP (float16's GradScaler checks
    for inf on the host every step; bf16 steps without one), Adam/AdamW and no gradient
    accumulation. Learning-rate schedules work; other scheduled hyperparameters raise.

    Args:
        warmup: eager iterations before the capture (PyTorch's recipe asks for a few).
        channels_last: train the model and its input in channels-last memory format.
        defer_outputs: report each step's losses one iteration late (see above); False
            reports them at once, waiting for every step.
    """

    priority = 'VERY_LOW'  # after resume and every other before_train

    def __init__(self, warmup: int = 3, channels_last: bool = True,
                 defer_outputs: bool = True) -> None:
        if warmup < 1:
            raise ValueError(f'CUDAGraphTrainStepHook warmup must be >= 1, got {warmup}.')
        self.warmup, self.channels_last = warmup, channels_last
        self.defer_outputs = defer_outputs

    def before_run(self, runner) -> None:
        model = runner.model
        if is_model_wrapper(model):
            raise RuntimeError(
                'CUDAGraphTrainStepHook captures a single-process step; this run is '
                f'distributed ({type(model).__name__}). Train on one GPU, or without '
                '--cuda-graph / the hook.')
        device = next(model.parameters()).device
        if device.type != 'cuda':
            raise RuntimeError(f'CUDAGraphTrainStepHook needs a CUDA device; the model is on '
                               f'{device}. Train without --cuda-graph / the hook.')

    def before_train(self, runner) -> None:
        model, optim_wrapper = runner.model, runner.optim_wrapper
        if type(optim_wrapper) not in (OptimWrapper, AmpOptimWrapper):
            raise TypeError(f'CUDAGraphTrainStepHook needs an OptimWrapper or AmpOptimWrapper, '
                            f'got {type(optim_wrapper).__name__}.')
        if optim_wrapper._accumulative_counts != 1:
            raise ValueError('CUDAGraphTrainStepHook steps every iteration; remove '
                             'optim_wrapper.accumulative_counts or train without it.')
        if (isinstance(optim_wrapper, AmpOptimWrapper)
                and optim_wrapper.cast_dtype != torch.bfloat16):
            raise ValueError(
                f'CUDAGraphTrainStepHook trains in float32 or bfloat16 AMP, not '
                f'{optim_wrapper.cast_dtype}: float16 needs a GradScaler, whose inf check '
                'syncs with the host each step. Use --amp --amp-dtype bfloat16.')
        if self.channels_last:
            to_channels_last(model, runner.hooks)
        model.train_step = CUDAGraphTrainStep(model, optim_wrapper, self.warmup,
                                              self.channels_last, self.defer_outputs)
        self.checkpoint_intervals = [h.interval for h in runner.hooks
                                     if isinstance(h, CheckpointHook) and not h.by_epoch]

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        """Flush at the last iteration of an epoch or of training and at iteration
        checkpoints: the steps that get saved."""
        loop = runner.train_loop
        flush = runner.iter + 1 >= loop.max_iters or any(
            self.every_n_train_iters(runner, n) for n in self.checkpoint_intervals)
        if isinstance(loop, EpochBasedTrainLoop):
            flush = flush or self.end_of_epoch(loop.dataloader, batch_idx)
        runner.model.train_step.flush = flush

    def after_train(self, runner) -> None:
        runner.model.__dict__.pop('train_step', None)  # the class's own again
