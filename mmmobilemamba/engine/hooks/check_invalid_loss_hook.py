"""Stop training at the first NaN/inf loss, saying where it happened and what to try."""
import math
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop

FIX_HINT = ('Try: a lower learning rate or a longer warm-up (optim_wrapper.optimizer.lr, '
            'param_scheduler), gradient clipping (optim_wrapper.clip_grad), AMP with dynamic '
            "loss scaling (tools/train.py --amp, i.e. AmpOptimWrapper with loss_scale='dynamic'"
            ') instead of plain fp16, and check the data for NaN/inf pixels or broken labels.')


def _value(v) -> Optional[float]:
    if isinstance(v, torch.Tensor):
        return v.detach().float().mean().item() if v.numel() else None
    return float(v) if isinstance(v, (int, float)) else None


@HOOKS.register_module()
class CheckFiniteLossHook(Hook):
    """Raise ``RuntimeError`` when the training loss becomes NaN or infinite.

    Without it a diverged run keeps going, logs ``loss: nan`` and overwrites good
    checkpoints with NaN weights. It runs before ``CheckpointHook`` (higher priority), so
    the iteration that went non-finite is never saved.

    Args:
        interval: check every ``interval`` iterations. The default 1 costs nothing extra:
            MMEngine's runtime-info hook reads every loss value each iteration anyway.
    """

    priority = 'NORMAL'

    def __init__(self, interval: int = 1) -> None:
        if interval < 1:
            raise ValueError(f'CheckFiniteLossHook interval must be >= 1, got {interval}.')
        self.interval = interval

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if not outputs or 'loss' not in outputs or not self.every_n_train_iters(
                runner, self.interval):
            return
        loss = _value(outputs['loss'])
        if loss is not None and math.isfinite(loss):
            return
        values = {k: _value(v) for k, v in outputs.items()}
        bad = [f'{k}={v}' for k, v in values.items() if v is not None and not math.isfinite(v)]
        good = [f'{k}={v:.4g}' for k, v in values.items() if v is not None and math.isfinite(v)]
        loop = runner.train_loop
        where = f'iteration {runner.iter + 1}/{loop.max_iters}'
        if not isinstance(loop, IterBasedTrainLoop):  # iter-based runs have no real epochs
            where += (f' (epoch {runner.epoch + 1}/{loop.max_epochs}, batch {batch_idx + 1}/'
                      f'{len(loop.dataloader)})')
        raise RuntimeError(
            f'Non-finite loss at training {where}: {", ".join(bad)}'
            + (f' (finite: {", ".join(good)})' if good else '')
            + '. Training stopped before saving this iteration (earlier checkpoints are in '
            + f'{runner.work_dir}). '
            + FIX_HINT)
