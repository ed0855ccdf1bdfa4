"""Log the training losses averaged over all ranks, not rank 0's own."""
from typing import Optional

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RankMeanLossHook(Hook):
    """Replace each logged loss by its mean over the ranks.

    Each rank's loss is the mean over its share of the global batch, and MMEngine logs rank
    0's. DDP averages the gradients, so the rank mean is the loss of the whole global batch:
    the number a 1-device run with that batch logs. Runs before ``RuntimeInfoHook``
    (VERY_HIGH) puts the outputs into the message hub, so give it ``priority='HIGHEST'``;
    a no-op in a single process. Costs one all-reduce per loss and iteration.
    """

    priority = 'HIGHEST'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if not outputs or get_world_size() == 1:
            return
        for key, value in outputs.items():
            if isinstance(value, torch.Tensor):
                value = value.detach().clone()
                all_reduce(value, op='mean')
                outputs[key] = value
