"""FLOPs of mmdet detectors from a bare image tensor.

``model(x, mode='tensor')`` is enough for one-stage detectors (RetinaNet, SSD), but a
two-stage detector's tensor mode runs the RPN's NMS on image metas and feeds the RoI head
however many proposals survive, so its count would depend on the weights. Like mmdet 2.x's
``forward_dummy`` (and a trained model at test time), ``DetectorFlopWrapper`` feeds the RoI
head a fixed set of ``num_proposals`` boxes; the RoI head itself runs the mask branch on the
first 100 of them, as mmdet does.
"""
from typing import Tuple

import torch
from torch import nn

from .flops import count_flops


def is_two_stage(model: nn.Module) -> bool:
    return getattr(model, 'roi_head', None) is not None and hasattr(model, 'rpn_head')


def fixed_proposals(num: int, height: int, width: int) -> torch.Tensor:
    """``num`` deterministic boxes (x1, y1, x2, y2) spread over an image of that size."""
    g = torch.Generator().manual_seed(0)
    centers = torch.rand(num, 2, generator=g) * torch.tensor([width, height])
    sizes = (0.05 + 0.45 * torch.rand(num, 2, generator=g)) * torch.tensor([width, height])
    boxes = torch.cat([centers - sizes / 2, centers + sizes / 2], dim=1)
    return boxes.clamp(min=0).minimum(torch.tensor([width, height, width, height]) - 1)


class DetectorFlopWrapper(nn.Module):
    """Call an mmdet detector on ``(1, 3, H, W)`` the way FLOP counters expect."""

    def __init__(self, model: nn.Module, num_proposals: int = 1000) -> None:
        super().__init__()
        self.model = model
        self.num_proposals = num_proposals

    def forward(self, x: torch.Tensor):
        if not is_two_stage(self.model):
            return self.model(x, mode='tensor')
        from mmengine.structures import InstanceData
        feats = self.model.extract_feat(x)
        rpn_outs = self.model.rpn_head(feats)
        proposals = [InstanceData(bboxes=fixed_proposals(
            self.num_proposals, x.shape[2], x.shape[3]).to(x))] * x.shape[0]
        return rpn_outs, self.model.roi_head(feats, proposals)


def count_detector_flops(model: nn.Module, height: int, width: int,
                         num_proposals: int = 1000) -> Tuple[int, int]:
    """(FLOPs, parameters) of ``model`` on one ``height x width`` image."""
    return count_flops(DetectorFlopWrapper(model, num_proposals),
                       (torch.randn(1, 3, height, width), ))
