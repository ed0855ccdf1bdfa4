"""MobileMamba's classifier head for mmpretrain: BatchNorm1d + Linear, optionally a second
(distillation) head whose logits are averaged with the first at test time."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmengine.registry import MODELS
from mmpretrain.models.heads import ClsHead

from ..layers import BN_Linear
from ..utils.shape_checks import check_in_channels


@MODELS.register_module()
class BNLinearClsHead(ClsHead):
    """``head`` (and ``head_dist``) are BN_Linear, so an official checkpoint's ``head.*`` /
    ``head_dist.*`` tensors live at ``head.head.*`` / ``head.head_dist.*`` here.

    Args:
        num_classes: number of classes.
        in_channels: channels of the pooled feature.
        distillation: add ``head_dist``; training returns both logits, eval their mean.
    """

    def __init__(self, num_classes: int, in_channels: int, distillation: bool = False,
                 init_cfg: Optional[dict] = None, **kwargs) -> None:
        super().__init__(init_cfg=init_cfg, **kwargs)
        if num_classes <= 0:
            raise ValueError(f'num_classes must be positive, got {num_classes}.')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.distillation = distillation
        self.head = BN_Linear(in_channels, num_classes)
        self.head_dist = BN_Linear(in_channels, num_classes) if distillation else None

    def forward(self, feats: Tuple[torch.Tensor, ...]
                ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        x = self.pre_logits(feats)
        if x.dim() != 2:
            raise ValueError(f'BNLinearClsHead expects pooled (N, C) features, got '
                             f'{tuple(x.shape)}; add neck=dict(type="GlobalAveragePooling").')
        check_in_channels('BNLinearClsHead', 'head.in_channels', self.in_channels, [x.shape[1]],
                          'the pooled feature (last backbone output)')
        cls = self.head(x)
        if self.head_dist is None:
            return cls
        dist = self.head_dist(x)
        return (cls, dist) if self.training else (cls + dist) / 2

    def loss(self, feats: Tuple[torch.Tensor, ...], data_samples: List, **kwargs) -> dict:
        """Without a teacher, both heads learn from the labels (a distiller overrides this)."""
        logits = self(feats)
        if isinstance(logits, tuple):
            return {f'{k}_{name}': v for name, out in zip(('cls', 'dist'), logits)
                    for k, v in self._get_loss(out, data_samples, **kwargs).items()}
        return self._get_loss(logits, data_samples, **kwargs)

    def predict(self, feats: Tuple[torch.Tensor, ...],
                data_samples: Optional[Sequence] = None) -> List:
        logits = self(feats)
        if isinstance(logits, tuple):  # predict() called in train mode
            logits = (logits[0] + logits[1]) / 2
        return self._get_predictions(logits, data_samples)
