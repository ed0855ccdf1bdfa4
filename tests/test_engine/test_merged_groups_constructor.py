"""MergedGroupsOptimWrapperConstructor: mmengine's paramwise groups merged where their
settings agree, stepping to the same parameters as the per-parameter groups."""
import copy

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from torch import nn

from mmmobilemamba.engine.optimizers import MergedGroupsOptimWrapperConstructor  # noqa: F401


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8),
                                      nn.ReLU())
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


PARAMWISE = {
    'decay': dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0),
    'head lr': dict(custom_keys={'head': dict(lr_mult=10.)}),
}


@pytest.mark.parametrize('paramwise', list(PARAMWISE))
def test_merged_groups_step_as_the_per_parameter_groups(paramwise):
    torch.manual_seed(0)
    per_param = Net()
    merged = copy.deepcopy(per_param)
    cfg = dict(optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.05),
               paramwise_cfg=PARAMWISE[paramwise])
    a = build_optim_wrapper(per_param, copy.deepcopy(cfg))
    b = build_optim_wrapper(merged, dict(copy.deepcopy(cfg),
                                         constructor='MergedGroupsOptimWrapperConstructor'))
    assert len(a.optimizer.param_groups) == 5 and len(b.optimizer.param_groups) == 2
    assert sum(len(g['params']) for g in b.optimizer.param_groups) == 5
    settings = {k: v for k, v in a.optimizer.param_groups[0].items() if k != 'params'}
    assert {k: v for k, v in b.optimizer.param_groups[0].items() if k != 'params'} == settings
    weight = torch.randn(1, 4, 6, 6)
    for _ in range(3):
        x = torch.randn(2, 3, 8, 8)
        for model, wrapper in ((per_param, a), (merged, b)):
            wrapper.update_params((model(x) * weight).sum())
    for p, q in zip(per_param.parameters(), merged.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-6, atol=1e-7)
