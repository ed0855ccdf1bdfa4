"""CheckFiniteLossHook: training stops at the first non-finite loss, naming the iteration,
epoch and batch, every loss term, and what to try, before that iteration is checkpointed."""
import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn


pytestmark = pytest.mark.usefixtures('one_thread')


class TwoLosses(BaseModel):
    """A linear classifier whose loss dict holds a data-dependent and a constant term."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, inputs, labels=None, mode='loss'):
        logits = self.fc(inputs)
        return dict(loss_cls=nn.functional.cross_entropy(logits, labels),
                    loss_reg=torch.tensor(0.5))


def test_nan_loss_stops_training_naming_iteration(tmp_path):
    """Sample 4 holds a NaN, so the 3rd batch (of 2, unshuffled) yields a NaN loss_cls:
    training stops at iteration 3, epoch 1, batch 3, before any checkpoint of it."""
    data = [dict(inputs=torch.full((4, ), float('nan')) if i == 4 else torch.randn(4),
                 labels=torch.tensor(i % 2)) for i in range(8)]
    runner = Runner(
        model=TwoLosses(), work_dir=str(tmp_path), experiment_name='nan_run',
        train_dataloader=dict(dataset=data, batch_size=2, collate_fn=dict(type='default_collate'),
                              sampler=dict(type='DefaultSampler', shuffle=False)),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False)),
        custom_hooks=[dict(type='CheckFiniteLossHook')])
    with pytest.raises(RuntimeError) as info:
        runner.train()
    msg = str(info.value)
    assert msg.startswith('Non-finite loss at training iteration 3/8 (epoch 1/2, batch 3/4): ')
    assert 'loss_cls=nan' in msg and 'loss=nan' in msg and 'finite: loss_reg=0.5' in msg
    assert 'lower learning rate' in msg and '--amp' in msg and 'check the data' in msg
    assert (tmp_path / 'iter_2.pth').exists() and not (tmp_path / 'iter_3.pth').exists()


def test_huge_lr_toy_training_stops_with_the_message(toy_imagenet, toy_cls_cfg, tmp_path):
    """The toy T2 recipe at lr 1e30: the hook from the classification base config stops it
    at the first NaN loss (iteration 2 with this seed) instead of training on."""
    cfg = toy_cls_cfg(toy_imagenet, str(tmp_path))
    cfg.optim_wrapper.optimizer.lr = 1e30
    cfg.train_cfg.max_epochs = 2
    with pytest.raises(RuntimeError, match=r'^Non-finite loss at training iteration \d/8 '
                       r'\(epoch 1/2, batch \d/4\): loss=nan'):
        Runner.from_cfg(cfg).train()


def test_interval_must_be_positive():
    from mmmobilemamba.engine.hooks import CheckFiniteLossHook
    with pytest.raises(ValueError, match='interval must be >= 1'):
        CheckFiniteLossHook(interval=0)
