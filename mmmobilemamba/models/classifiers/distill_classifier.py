"""The paper's † training recipe: DeiT-style soft knowledge distillation from a frozen
teacher, as an mmpretrain classifier."""
import logging
from typing import List, Optional

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.registry import MODELS
from mmpretrain.models import ImageClassifier
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from torch import nn


@MODELS.register_module()
class KDImageClassifier(ImageClassifier):
    """An ImageClassifier that also learns from a frozen teacher's logits.

    The losses are the head's own loss on the (mixed, smoothed) labels, ``loss_cls``, and
    ``loss_kd = kd_weight * tau**2 * KL(softmax(t / tau) || softmax(s / tau))`` averaged over
    the batch, where ``t`` are the teacher's logits on the same augmented batch. ``s`` are
    the distillation head's logits when the head has one (``distillation=True``: the class
    head learns from the labels, the distillation head from the teacher, as in DeiT), else
    the single head's (the reference recipe, which keeps the released single-head layout).

    The teacher is built on the first training step and kept out of the module tree, so
    checkpoints, EMA copies, the optimizer and parameter counts hold only the student, and
    testing a distilled checkpoint needs neither the teacher's weights nor its library
    (e.g. timm for ``TimmClassifier``).

    Args:
        teacher: config of any mmpretrain classifier, weights given by
            ``init_cfg=dict(type='Pretrained', checkpoint=...)``. It sees the batch in its
            own normalisation (its ``data_preprocessor`` mean, std and ``to_rgb``).
        kd_weight: weight of the distillation loss.
        tau: softmax temperature.
        teacher_input_size: resize (bicubic) the batch to this square size for the teacher;
            None feeds it the student's resolution.
        **kwargs: :class:`ImageClassifier` arguments.
    """

    def __init__(self, teacher: dict, kd_weight: float = 1.0, tau: float = 1.0,
                 teacher_input_size: Optional[int] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if tau <= 0:
            raise ValueError(f'tau must be positive, got {tau}.')
        self.teacher_cfg = teacher
        self.kd_weight = kd_weight
        self.tau = tau
        self.teacher_input_size = teacher_input_size
        self._teacher = None

    @property
    def teacher(self) -> nn.Module:
        """The frozen teacher in eval mode, built and loaded on first use."""
        if self._teacher is None:
            cfg = self.teacher_cfg
            if not any(cfg.get(k) for k in ('init_cfg', 'pretrained', 'checkpoint_path')):
                print_log('KDImageClassifier: the teacher has no checkpoint (init_cfg); '
                          'distilling from random weights.', logger='current',
                          level=logging.WARNING)
            teacher = MMPRETRAIN_MODELS.build(cfg)
            teacher.init_weights()
            teacher.requires_grad_(False).eval()
            # Not nn.Module.__setattr__, which would register it as a submodule.
            object.__setattr__(self, '_teacher', teacher)
            print_log(f'KDImageClassifier: built the teacher {cfg["type"]} '
                      f'({sum(p.numel() for p in teacher.parameters()):,} frozen parameters).',
                      logger='current')
        return self._teacher

    def teacher_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """Undo the student's normalisation of ``inputs`` and apply the teacher's."""
        src, dst = self.data_preprocessor, self.teacher.data_preprocessor
        x = inputs.float()
        if getattr(src, '_enable_normalize', False):
            x = x * src.std + src.mean
        if getattr(src, 'to_rgb', False) != getattr(dst, 'to_rgb', False):
            x = x.flip(1)
        if getattr(dst, '_enable_normalize', False):
            x = (x - dst.mean) / dst.std
        size = self.teacher_input_size
        if size and tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode='bicubic', align_corners=False,
                              antialias=True)
        return x

    def loss(self, inputs: torch.Tensor, data_samples: List) -> dict:
        logits = self.head(self.extract_feat(inputs))
        cls_score, kd_score = logits if isinstance(logits, tuple) else (logits, logits)
        losses = {('loss_cls' if k == 'loss' else k): v
                  for k, v in self.head._get_loss(cls_score, data_samples).items()}
        teacher = self.teacher.to(inputs.device)
        with torch.no_grad():
            teacher_score = teacher(self.teacher_inputs(inputs), mode='tensor')
        if teacher_score.shape != kd_score.shape:
            raise ValueError(f'Teacher logits {tuple(teacher_score.shape)} do not match the '
                             f'student\'s {tuple(kd_score.shape)}: set the teacher\'s '
                             'num_classes to the student\'s.')
        kl = F.kl_div(F.log_softmax(kd_score.float() / self.tau, dim=1),
                      F.log_softmax(teacher_score.float() / self.tau, dim=1),
                      reduction='batchmean', log_target=True)
        losses['loss_kd'] = self.kd_weight * self.tau**2 * kl
        return losses
