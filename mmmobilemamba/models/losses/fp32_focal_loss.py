"""mmdet's sigmoid focal loss computed in float32, so that RetinaNet trains under AMP."""
from typing import Optional

import torch
from mmdet.models.losses import FocalLoss
from mmengine.registry import MODELS


@MODELS.register_module()
class FP32FocalLoss(FocalLoss):
    """:class:`mmdet.models.losses.FocalLoss` with its inputs cast to float32.

    Under autocast the head's logits arrive in float16 or bfloat16, and on CUDA mmdet hands
    them to mmcv's ``sigmoid_focal_loss`` kernel, which computes in the input's dtype:
    mmcv 2.1 has no bfloat16 kernel at all, and in float16 ``log(max(p, FLT_MIN))`` becomes
    ``log(0) = -inf`` as soon as a logit passes about +-11 (``exp`` overflows float16), so
    training stops on an inf loss after a few iterations. Losses belong in float32 under
    AMP; the cast costs one copy of the logits. Same arguments and values as ``FocalLoss``.
    """

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                weight: Optional[torch.Tensor] = None, avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> torch.Tensor:
        # only the logits need it: a float16 weight multiplies the float32 loss exactly
        return super().forward(pred.float(), target, weight, avg_factor, reduction_override)
