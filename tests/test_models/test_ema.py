"""ForeachExponentialMovingAverage: mmengine's EMA update, bit for bit, with multi-tensor
kernels; the classification configs use it."""
import pytest
import torch
from mmengine.model import ExponentialMovingAverage
from torch import nn

from mmmobilemamba.models.utils import ForeachExponentialMovingAverage


@pytest.mark.parametrize('update_buffers', [True, False])
@pytest.mark.parametrize('interval', [1, 2])
def test_foreach_ema_equals_mmengines(update_buffers, interval):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Linear(4, 4))
    ours = ForeachExponentialMovingAverage(model, momentum=0.1, interval=interval,
                                           update_buffers=update_buffers)
    theirs = ExponentialMovingAverage(model, momentum=0.1, interval=interval,
                                      update_buffers=update_buffers)
    for _ in range(5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model(torch.randn(2, 3, 6, 6))  # moves the BatchNorm statistics
        ours.update_parameters(model)
        theirs.update_parameters(model)
    a, b = theirs.state_dict(), ours.state_dict()
    assert list(a) == list(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert not torch.equal(b['module.0.weight'], model[0].weight)  # an average, not a copy


def test_loading_a_state_dict_brings_its_step_count():
    """The host mirror of ``steps`` follows a loaded checkpoint: a count of 0 makes the next
    update a copy again, as in mmengine's class."""
    torch.manual_seed(0)
    model = nn.Linear(4, 4)
    ema = ForeachExponentialMovingAverage(model, momentum=0.1)
    fresh = ForeachExponentialMovingAverage(model, momentum=0.1).state_dict()
    for _ in range(3):
        with torch.no_grad():
            model.weight.add_(1.0)
        ema.update_parameters(model)
    assert int(ema.steps) == 3
    ema.load_state_dict(fresh)
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update_parameters(model)
    assert int(ema.steps) == 1
    assert torch.equal(ema.module.weight, model.weight)  # step 0: a copy
