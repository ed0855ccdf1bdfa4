"""FPN with transposed-conv levels above the finest input (EfficientViT's detection neck).

MobileMamba's finest feature is at stride 16, so RetinaNet (strides 8..128) and Mask R-CNN
(strides 4..64) need 1 or 2 levels *finer* than the backbone gives. This neck is mmdet's
``FPN`` plus ``extra_trans_convs`` (2x2 stride-2 ConvTranspose upsampling chained from the
finest top-down lateral) each refined by an ``extra_fpn_conv`` (3x3). Parameter names follow
the reference (``lateral_convs``, ``fpn_convs``, ``extra_trans_convs``, ``extra_fpn_convs``)
so its released detection checkpoints load.
"""
from typing import List, Tuple, Union

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet.models.necks import FPN
from mmengine.registry import MODELS
from torch import nn

from ..utils.shape_checks import check_in_channels


@MODELS.register_module()
class EfficientViTFPN(FPN):
    """mmdet ``FPN`` with ``num_extra_trans_convs`` upsampled levels in front.

    Args:
        in_channels: channels of each backbone output.
        out_channels: channels of every output level.
        num_outs: total outputs, the transposed-conv levels included. Levels beyond the
            backbone's (and beyond the transposed ones) come from ``add_extra_convs`` /
            max-pooling exactly as in ``FPN``.
        num_extra_trans_convs: finer levels to add (1 for RetinaNet, 2 for Mask R-CNN).
        The other arguments are ``FPN``'s.

    Outputs, finest first: ``extra_fpn_convs[i]`` refines the i-th finest transposed level
    (so for two levels ``extra_fpn_convs[0]`` follows ``extra_trans_convs[1]``), then the
    usual FPN levels.
    """

    def __init__(self,
                 in_channels: List[int],
                 out_channels: int,
                 num_outs: int,
                 num_extra_trans_convs: int = 0,
                 start_level: int = 0,
                 end_level: int = -1,
                 add_extra_convs: Union[bool, str] = False,
                 relu_before_extra_convs: bool = False,
                 no_norm_on_lateral: bool = False,
                 conv_cfg: Union[dict, None] = None,
                 norm_cfg: Union[dict, None] = None,
                 act_cfg: Union[dict, None] = None,
                 upsample_cfg: dict = dict(mode='nearest'),
                 init_cfg: Union[dict, List[dict]] = dict(
                     type='Xavier', layer='Conv2d', distribution='uniform')) -> None:
        if num_extra_trans_convs < 0:
            raise ValueError(f'num_extra_trans_convs must be >= 0, got {num_extra_trans_convs}.')
        super().__init__(
            in_channels, out_channels, num_outs - num_extra_trans_convs,
            start_level=start_level, end_level=end_level, add_extra_convs=add_extra_convs,
            relu_before_extra_convs=relu_before_extra_convs,
            no_norm_on_lateral=no_norm_on_lateral, conv_cfg=conv_cfg, norm_cfg=norm_cfg,
            act_cfg=act_cfg, upsample_cfg=upsample_cfg, init_cfg=init_cfg)
        self.num_extra_trans_convs = num_extra_trans_convs
        self.extra_trans_convs = nn.ModuleList()
        self.extra_fpn_convs = nn.ModuleList()
        for _ in range(num_extra_trans_convs):
            self.extra_trans_convs.append(ConvModule(
                out_channels, out_channels, 2, stride=2, conv_cfg=dict(type='deconv'),
                norm_cfg=None if no_norm_on_lateral else norm_cfg, act_cfg=act_cfg,
                inplace=False))
            self.extra_fpn_convs.append(ConvModule(
                out_channels, out_channels, 3, padding=1, conv_cfg=conv_cfg,
                norm_cfg=norm_cfg, act_cfg=act_cfg, inplace=False))

    def _upsample_add(self, coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        if 'scale_factor' in self.upsample_cfg:
            return fine + F.interpolate(coarse, **self.upsample_cfg)
        return fine + F.interpolate(coarse, size=fine.shape[2:], **self.upsample_cfg)

    def forward(self, inputs: Tuple[torch.Tensor, ...]) -> Tuple[torch.Tensor, ...]:
        if len(inputs) != len(self.in_channels):
            raise ValueError(f'EfficientViTFPN got {len(inputs)} inputs, expected '
                             f'{len(self.in_channels)} (in_channels={self.in_channels}).')
        check_in_channels('EfficientViTFPN', 'neck.in_channels', self.in_channels,
                          [x.shape[1] for x in inputs])
        laterals = [conv(inputs[i + self.start_level])
                    for i, conv in enumerate(self.lateral_convs)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = self._upsample_add(laterals[i], laterals[i - 1])

        # finer levels: chained transposed convs from the finest top-down lateral
        trans = [laterals[0]]
        for conv in self.extra_trans_convs:
            trans.append(conv(trans[-1]))
        trans = trans[:0:-1]  # finest first, without laterals[0]
        extra_outs = [conv(x) for conv, x in zip(self.extra_fpn_convs, trans)]

        outs = [self.fpn_convs[i](x) for i, x in enumerate(laterals)]
        num_used = len(laterals)
        if self.num_outs > num_used:  # self.num_outs excludes the transposed levels
            if not self.add_extra_convs:
                for _ in range(self.num_outs - num_used):
                    outs.append(F.max_pool2d(outs[-1], 1, stride=2))
            else:
                source = {'on_input': inputs[self.backbone_end_level - 1],
                          'on_lateral': laterals[-1], 'on_output': outs[-1]}
                outs.append(self.fpn_convs[num_used](source[self.add_extra_convs]))
                for i in range(num_used + 1, self.num_outs):
                    x = F.relu(outs[-1]) if self.relu_before_extra_convs else outs[-1]
                    outs.append(self.fpn_convs[i](x))
        return tuple(extra_outs + outs)
