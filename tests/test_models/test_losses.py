"""FP32FocalLoss: mmdet's focal loss on float32 inputs whatever autocast hands it, so that
RetinaNet trains under --amp (mmcv's CUDA kernel overflows in float16, has no bfloat16)."""
import pytest
import torch

pytest.importorskip('mmdet')


def test_half_logits_give_the_float32_loss(rel_err):
    from mmdet.models.losses import FocalLoss

    from mmmobilemamba.models.losses import FP32FocalLoss
    torch.manual_seed(0)
    logits = torch.randn(300, 3) * 12  # beyond float16's sigmoid range at the tails
    target = torch.randint(0, 4, (300, ))  # 3 = background
    weight = torch.rand(300).half()
    want = FocalLoss(use_sigmoid=True)(logits.half().float(), target, weight.float(),
                                        avg_factor=37.0)
    for dtype in (torch.float16, torch.bfloat16):
        got = FP32FocalLoss(use_sigmoid=True)(logits.to(dtype), target, weight, avg_factor=37.0)
        assert got.dtype == torch.float32 and torch.isfinite(got)
        ref = FocalLoss(use_sigmoid=True)(logits.to(dtype).float(), target, weight.float(),
                                          avg_factor=37.0)
        assert rel_err(got, ref) < 1e-6
    assert rel_err(FP32FocalLoss(use_sigmoid=True)(logits, target, weight.float(),
                                                   avg_factor=37.0), want) < 1e-2


def test_gradient_reaches_half_logits():
    from mmmobilemamba.models.losses import FP32FocalLoss
    logits = (torch.randn(64, 3) * 12).half().requires_grad_()
    FP32FocalLoss(use_sigmoid=True)(logits, torch.randint(0, 4, (64, ))).backward()
    assert logits.grad.dtype == torch.float16 and torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


@pytest.mark.parametrize('config', ['configs/detection/retinanet_mobilemamba_b1.py',
                                    'configs/detection/retinanet_mobilemamba_b1_toy.py',
                                    'docs/examples/fcos_mobilemamba_b1.py'])
def test_focal_loss_configs_use_it_with_mmdets_settings(config, repo_root, build_model):
    import os.path as osp

    from mmengine.config import Config

    from mmmobilemamba.models.losses import FP32FocalLoss
    cfg = Config.fromfile(osp.join(repo_root, config))
    assert cfg.model.bbox_head.loss_cls.type == 'FP32FocalLoss'
    loss = build_model(cfg).bbox_head.loss_cls
    assert isinstance(loss, FP32FocalLoss)
    assert (loss.gamma, loss.alpha, loss.use_sigmoid) == (2.0, 0.25, True)
