"""MobileMamba backbone (CVPR'25), exact to the released checkpoints' state_dict layout."""
import logging
import warnings
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ...utils.checkpoint import (check_state_dict_matches, checkpoint_arch,
                                 load_backbone_checkpoint)
from ..layers import FFN, Conv2d_BN, MBWTConv2d, MobileMambaBlock, PatchMerging, Residual
from ..utils import fuse_modules
from ..utils.shape_checks import check_feature_strides, is_tracing

MIN_INPUT_SIZE = 32


def traces_symbolic_sizes(compile_cfg: Optional[dict]) -> bool:
    """Whether ``torch.compile(**compile_cfg)`` may trace symbolic sizes: ``dynamic=True``,
    or its default ``None``, which turns a size dynamic once a second one comes."""
    return compile_cfg is not None and compile_cfg.get('dynamic') is not False


def compile_kwargs(compile_cfg: dict) -> dict:
    """``torch.compile`` arguments for ``compile_cfg``. Inductor's coalescing analysis for
    tiling does not handle symbolic sizes yet (its own config says so; in torch 2.11 a
    MobileMamba-B1 RetinaNet fails inside it, ``AssertionError`` in
    ``tiling_utils.get_pw_red_splits``), so with dynamic sizes it is off unless
    ``compile_cfg`` sets it. It only chooses how kernels tile: the results are the same."""
    kwargs = dict(compile_cfg)
    if (kwargs.get('backend', 'inductor') == 'inductor' and kwargs.get('mode') is None
            and traces_symbolic_sizes(compile_cfg)):
        kwargs['options'] = {'triton.coalesce_tiling_analysis': False,
                             **kwargs.get('options', {})}
    return kwargs


def _variant(embed_dims, depths, drop_path_rate):
    return dict(embed_dims=embed_dims, depths=depths, global_ratios=[0.8, 0.7, 0.6],
                local_ratios=[0.2, 0.2, 0.3], kernel_sizes=[7, 5, 3], ssm_ratio=2,
                drop_path_rate=drop_path_rate)


def _arch_text(arch: dict) -> str:
    return f"embed_dims {arch['embed_dims']}, depths {arch['depths']}"


@MODELS.register_module()
class MobileMamba(BaseModule):
    """MobileMamba backbone.

    Stages are numbered as in the reference: 0 = patch_embed (stride 16), 1..3 =
    ``blocks1..3`` (strides 16, 32, 64). The module's state_dict equals a released
    classification checkpoint without its ``head.*``/``head_dist.*`` keys.

    Args:
        arch: a name in ``arch_zoo`` or a dict with ``embed_dims``, ``depths``,
            ``global_ratios``, ``local_ratios``, ``kernel_sizes`` and ``ssm_ratio``
            (``drop_path_rate`` optional).
        in_channels: input channels.
        out_indices: stages to return, 0..3 (negative counts from the end).
        frozen_stages: freeze stages 0..frozen_stages (-1: none); stays frozen in train().
        norm_eval: keep every BatchNorm in eval mode during training.
        drop_path_rate: stochastic depth; ``None`` takes the variant's value.
        scan_backend: selective-scan backend ('auto', 'torch', 'chunked', 'triton',
            'mamba_ssm'); ONNX exports trace their own formulation of the same math
            (``mmmobilemamba.deployment.export_formulation``).
        compile_cfg: ``torch.compile`` arguments for the stages, e.g. ``dict(dynamic=True)``
            for detection's and segmentation's varying image sizes (one graph for all
            sizes); None runs them eagerly. The input checks stay eager; a trace, an ONNX
            export or an outer ``torch.compile`` runs the stages' plain code.
        init_cfg: e.g. ``dict(type='Pretrained', checkpoint=path)``; takes official
            (flat, ``net``/``net_E``/``model``/``state_dict``-wrapped) or OpenMMLab
            (``backbone.``-prefixed) checkpoints and reports mismatched keys loudly.
        pretrained: deprecated form of ``init_cfg=dict(type='Pretrained',
            checkpoint=pretrained)``, which mmseg's EncoderDecoder and older configs pass.

    Whichever loader fills this module (``init_cfg``, ``load_from``, mmdet's
    ``init_detector``, mmseg's ``init_model``, mmpretrain's ``get_model``,
    ``nn.Module.load_state_dict``), tensors of another variant raise
    :class:`~mmmobilemamba.utils.CheckpointError` instead of leaving random weights.
    """

    arch_zoo: Dict[str, dict] = {
        't2': _variant([144, 272, 368], [1, 2, 2], 0.0),
        't4': _variant([176, 368, 448], [1, 2, 2], 0.0),
        's6': _variant([192, 384, 448], [1, 2, 2], 0.0),
        'b1': _variant([200, 376, 448], [2, 3, 2], 0.03),
        'b2': _variant([200, 376, 448], [2, 3, 2], 0.03),
        'b4': _variant([200, 376, 448], [2, 3, 2], 0.03),
    }
    #: The input size each released classifier was trained and evaluated at.
    arch_resolution: Dict[str, int] = {'t2': 192, 't4': 192, 's6': 224, 'b1': 256, 'b2': 384,
                                       'b4': 512}
    arch_keys = ('embed_dims', 'depths', 'global_ratios', 'local_ratios', 'kernel_sizes',
                 'ssm_ratio')
    num_stages = 4  # patch_embed + 3 block stages

    def __init__(self,
                 arch: Union[str, dict] = 's6',
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = (3, ),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 drop_path_rate: Optional[float] = None,
                 scan_backend: str = 'auto',
                 compile_cfg: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, list]] = None,
                 pretrained: Optional[str] = None) -> None:
        super().__init__(init_cfg=self._pretrained_init_cfg(pretrained, init_cfg))
        self.arch_settings = self._parse_arch(arch)
        self.arch_name = arch.lower() if isinstance(arch, str) else None
        self.in_channels = in_channels
        self.out_indices = self._parse_out_indices(out_indices)
        if not -1 <= frozen_stages < self.num_stages:
            raise ValueError(f'frozen_stages must be in [-1, {self.num_stages - 1}], '
                             f'got {frozen_stages}.')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        if compile_cfg is not None and not isinstance(compile_cfg, dict):
            raise TypeError('compile_cfg must be None or a dict of torch.compile arguments, '
                            f'e.g. dict(dynamic=True); got {compile_cfg!r}.')
        self.compile_cfg = compile_cfg
        self._compiled: Optional[Tuple[int, Callable]] = None  # (id(self), compiled fn)
        s = self.arch_settings
        if drop_path_rate is None:
            drop_path_rate = s.get('drop_path_rate', 0.0)
        dims, depths = s['embed_dims'], s['depths']
        self.embed_dims = list(dims)

        e = dims[0]
        self.patch_embed = nn.Sequential(
            Conv2d_BN(in_channels, e // 8, 3, 2, 1), nn.ReLU(),
            Conv2d_BN(e // 8, e // 4, 3, 2, 1), nn.ReLU(),
            Conv2d_BN(e // 4, e // 2, 3, 2, 1), nn.ReLU(),
            Conv2d_BN(e // 2, e, 3, 2, 1))

        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        for i in range(3):
            blocks = []
            if i > 0:
                blocks += [self._transition(dims[i - 1]), PatchMerging(dims[i - 1], dims[i]),
                           self._transition(dims[i])]
            for _ in range(depths[i]):
                blocks.append(MobileMambaBlock(
                    dims[i], s['global_ratios'][i], s['local_ratios'][i],
                    s['kernel_sizes'][i], s['ssm_ratio'], rates.pop(0), scan_backend))
            self.add_module(f'blocks{i + 1}', nn.Sequential(*blocks))
        if traces_symbolic_sizes(compile_cfg):
            for m in self.modules():
                if isinstance(m, MBWTConv2d):
                    m.pad_any_parity = True
        self._freeze_stages()

    @staticmethod
    def _pretrained_init_cfg(pretrained: Optional[str],
                             init_cfg: Optional[Union[dict, list]]) -> Optional[Union[dict, list]]:
        """``pretrained=path`` as the init_cfg it stands for, like mmdet's and mmseg's
        backbones. An empty ``dict(type='Pretrained', checkpoint=None)`` (our configs'
        placeholder) takes the path; any other init_cfg besides ``pretrained`` is an error."""
        if pretrained is None:
            return init_cfg
        if not isinstance(pretrained, str):
            raise TypeError(f'MobileMamba: pretrained must be a checkpoint path (str) or None, '
                            f'got {type(pretrained).__name__}; better give '
                            "init_cfg=dict(type='Pretrained', checkpoint=PATH).")
        placeholder = (isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained'
                       and init_cfg.get('checkpoint') is None)
        if init_cfg is not None and not placeholder:
            raise ValueError(
                f'MobileMamba got both pretrained={pretrained!r} and init_cfg={init_cfg!r}; '
                "give the weights once, as init_cfg=dict(type='Pretrained', checkpoint=PATH), "
                'and set pretrained=None (in an mmseg config: model.pretrained=None).')
        warnings.warn("MobileMamba: pretrained= is deprecated; use init_cfg=dict("
                      f"type='Pretrained', checkpoint={pretrained!r}) instead.", FutureWarning)
        return dict(init_cfg or {}, type='Pretrained', checkpoint=pretrained)

    @staticmethod
    def _transition(dim: int) -> nn.Sequential:
        """Residual DW3x3 + residual FFN around each PatchMerging."""
        return nn.Sequential(Residual(Conv2d_BN(dim, dim, 3, 1, 1, groups=dim)),
                             Residual(FFN(dim, 2 * dim)))

    def _parse_arch(self, arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            if arch.lower() not in self.arch_zoo:
                raise ValueError(f'Unknown MobileMamba arch {arch!r}; choose one of '
                                 f'{sorted(self.arch_zoo)} or pass a dict with keys '
                                 f'{list(self.arch_keys)}.')
            return dict(self.arch_zoo[arch.lower()])
        if not isinstance(arch, dict):
            raise TypeError(f'arch must be a str or dict, got {type(arch).__name__}.')
        missing = [k for k in self.arch_keys if k not in arch]
        unknown = [k for k in arch if k not in self.arch_keys + ('drop_path_rate', )]
        if missing or unknown:
            raise ValueError(f'Custom arch dict: missing keys {missing}, unknown keys '
                             f'{unknown}; expected {list(self.arch_keys)}.')
        for k in self.arch_keys[:5]:
            if len(arch[k]) != 3:
                raise ValueError(f'arch[{k!r}] needs 3 values (one per stage), got {arch[k]}.')
        return dict(arch)

    def _parse_out_indices(self, out_indices: Union[int, Sequence[int]]) -> Tuple[int, ...]:
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        parsed = []
        for i in out_indices:
            if not isinstance(i, int) or not -self.num_stages <= i < self.num_stages:
                raise ValueError(f'out_indices entries must be ints in [0, 3] (0 = patch_embed, '
                                 f'1..3 = blocks1..3) or negative, got {tuple(out_indices)}.')
            parsed.append(i % self.num_stages)
        if not parsed:
            raise ValueError('out_indices is empty; ask for at least one stage.')
        return tuple(sorted(set(parsed)))

    @property
    def stages(self) -> Tuple[nn.Module, ...]:
        return (self.patch_embed, self.blocks1, self.blocks2, self.blocks3)

    @property
    def out_channels(self) -> Tuple[int, ...]:
        """Channels of each returned feature map, in ``out_indices`` order."""
        chans = [self.embed_dims[0]] + self.embed_dims
        return tuple(chans[i] for i in self.out_indices)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'MobileMamba expects (N, {self.in_channels}, H, W) input, got '
                             f'{tuple(x.shape)}; set in_channels or fix the data pipeline.')
        if x.shape[2] < MIN_INPUT_SIZE or x.shape[3] < MIN_INPUT_SIZE:
            raise ValueError(f'MobileMamba needs inputs of at least {MIN_INPUT_SIZE}x'
                             f'{MIN_INPUT_SIZE} pixels (total stride 64), got '
                             f'{tuple(x.shape[2:])}; resize or pad the images.')

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        self._check_input(x)
        check_feature_strides(self, x)  # once: do the detector heads' strides fit?
        return self._stages_fn()(x)

    def _stages_fn(self) -> Callable[[torch.Tensor], Tuple[torch.Tensor, ...]]:
        """:meth:`_forward_stages`, compiled once per instance when ``compile_cfg`` asks
        (a deep copy, e.g. an EMA model, compiles its own rather than call the original's)."""
        if self.compile_cfg is None or is_tracing():
            return self._forward_stages
        if self._compiled is None or self._compiled[0] != id(self):
            self._compiled = (id(self), torch.compile(self._forward_stages,
                                                      **compile_kwargs(self.compile_cfg)))
        return self._compiled[1]

    def _forward_stages(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _freeze_stages(self) -> None:
        for stage in self.stages[:self.frozen_stages + 1]:
            stage.eval()
            for p in stage.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True) -> 'MobileMamba':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def init_weights(self) -> None:
        cfg = self.init_cfg
        if not (isinstance(cfg, dict) and cfg.get('type') == 'Pretrained'):
            super().init_weights()
        elif cfg.get('checkpoint') is None:
            msg = ('MobileMamba: init_cfg is Pretrained but no checkpoint is set, so the '
                   'backbone starts from RANDOM weights. That is right only when training '
                   'ImageNet from scratch; to fine-tune, set model.backbone.init_cfg.checkpoint '
                   '(e.g. --cfg-options model.backbone.init_cfg.checkpoint=PATH) to the '
                   'released classification weights.')
            warnings.warn(msg)
            print_log(msg, logger='current', level=logging.WARNING)
            self._is_init = True
        else:  # names the file in its errors, which the loading hook cannot
            load_backbone_checkpoint(self, cfg['checkpoint'], use_ema=cfg.get('use_ema', False),
                                     strict=cfg.get('strict', False))
            self._is_init = True

    def check_checkpoint_tensors(self, tensors: Mapping[str, torch.Tensor],
                                 filename: Optional[str] = None, prefix: str = '') -> None:
        """Raise :class:`~mmmobilemamba.utils.CheckpointError` naming the keys, shapes and
        both variants when ``tensors`` (this module's keys, without ``prefix``) hold another
        variant (any shape differs) or another model (under half of our tensors found)."""
        own = self.state_dict()
        ours = dict(embed_dims=self.embed_dims, depths=list(self.arch_settings['depths']))
        name = f"arch '{self.arch_name}'" if self.arch_name else None
        hint = f'This backbone is {name or "a custom arch"} ({_arch_text(ours)}).'
        theirs = checkpoint_arch(tensors)
        if theirs and theirs != ours:
            names = [repr(n) for n, a in self.arch_zoo.items()
                     if dict(embed_dims=a['embed_dims'], depths=a['depths']) == theirs]
            named = f" (arch {' / '.join(names)})" if names else ''
            hint += (f' The checkpoint holds a MobileMamba with {_arch_text(theirs)}{named}: '
                     f"give weights of {name or 'this arch'}, or set the backbone's arch "
                     f"(model.backbone.arch) to {names[0] if names else 'that of the checkpoint'}.")
        own_fused, ckpt_fused = (not any('.bn.' in k for k in d) for d in (own, tensors))
        if own_fused and not ckpt_fused:
            hint += ' This model is fused (switch_to_deploy): load the checkpoint, then fuse.'
        elif ckpt_fused and not own_fused:
            hint += (' The checkpoint is of a fused model (no BatchNorm tensors): load it '
                     'into a model after switch_to_deploy(), or give the unfused weights.')
        check_state_dict_matches(filename, tensors, own, 'MobileMamba backbone',
                                 reshaped_fails=True, hint=hint, prefix=prefix)

    def _load_from_state_dict(self, state_dict: Mapping[str, torch.Tensor], prefix: str,
                              *args, **kwargs) -> None:
        """Every loader (mmengine's ``load_state_dict``, torch's) calls this with our prefix
        before filling our children; mmengine alone would only log size mismatches and keep
        random weights. A state_dict without any of our keys (e.g. a head) is let through."""
        tensors = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if tensors:
            self.check_checkpoint_tensors(tensors, prefix=prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def switch_to_deploy(self) -> None:
        """Fold every BatchNorm into its conv (inference only; not reversible)."""
        fuse_modules(self)
        self.deploy = True
