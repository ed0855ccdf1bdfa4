"""Make ``--resume`` continue the random streams exactly where the checkpoint left them."""
import random
from typing import Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop


def get_random_state() -> dict:
    """Python, NumPy and torch (CPU and CUDA) generator states, as plain lists/tensors so
    that ``torch.load(weights_only=True)`` reads them without extra allow-listing."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = dict(python=random.getstate(),
                 numpy=(name, keys.tolist(), pos, has_gauss, gauss),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(state: dict) -> None:
    """Inverse of :func:`get_random_state`. The generator states may come back on the GPU
    (MMEngine's resume maps a checkpoint's tensors to the current device)."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state['numpy']
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])


class _RestoreAfterSkip:
    """Stands in for the iter-based loop's data iterator while it skips the batches trained
    before the checkpoint; restores the saved random state just before the first new batch
    is drawn, then hands the real iterator back to the loop."""

    def __init__(self, loop: IterBasedTrainLoop, skip: int, state: dict) -> None:
        self.loop, self.inner, self.skip, self.state = loop, loop.dataloader_iterator, skip, state

    def __iter__(self) -> '_RestoreAfterSkip':
        return self

    def __next__(self):
        if self.skip > 0:
            self.skip -= 1
            return next(self.inner)
        set_random_state(self.state)
        self.loop.dataloader_iterator = self.inner
        return next(self.inner)


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save the random generators' states in every checkpoint and restore them on resume.

    MMEngine re-seeds a resumed run from ``randomness.seed``, so augmentation, Mixup/CutMix
    and drop-path draw other numbers than the run that was interrupted, and the weights
    diverge. This hook stores the states at ``before_save_checkpoint`` (after the update of
    the saved iteration) and puts them back just before the first batch after resuming is
    drawn: for an iteration-based loop after it has skipped the batches already trained
    (with ``num_workers=0`` that skip runs the pipeline and draws random numbers), for an
    epoch-based loop at the start of the next epoch. Validation during training keeps the
    training streams unchanged (it restores them after ``val``), so a run resumed from a
    checkpoint of an iteration that validated draws the same numbers as the original one.
    With ``randomness=dict(seed=..., deterministic=True)`` and ``num_workers=0`` a resumed
    CPU run then ends bitwise equal to an uninterrupted one. DataLoader worker processes
    (``num_workers > 0``) seed themselves from ``randomness.seed`` each epoch; their streams
    are not saved.
    """

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._pending: Optional[dict] = None
        self._before_val: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['random_state'] = self._before_val or get_random_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if runner._resume and 'random_state' in checkpoint:  # as EMAHook: resume only
            self._pending = checkpoint['random_state']

    def before_train_epoch(self, runner) -> None:
        if self._pending is None:
            return
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop) and loop.iter > 0:
            loop.dataloader_iterator = _RestoreAfterSkip(loop, loop.iter, self._pending)
        else:
            set_random_state(self._pending)
        self._pending = None

    def before_val(self, runner) -> None:
        self._before_val = get_random_state()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            set_random_state(self._before_val)
            self._before_val = None
