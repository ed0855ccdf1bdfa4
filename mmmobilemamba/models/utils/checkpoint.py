"""Reading released MobileMamba checkpoints: official (flat or wrapped) and OpenMMLab layouts."""
import logging
from typing import Dict, Mapping

import torch
from mmengine.logging import print_log
from torch import nn

from ...utils.checkpoint_check import CheckpointError, check_state_dict_matches, read_checkpoint

HEAD_PREFIXES = ('head.', 'head_dist.')


def unwrap_state_dict(ckpt: Mapping, use_ema: bool = False) -> Dict[str, torch.Tensor]:
    """Return the flat state_dict inside a checkpoint.

    The reference trainer saves ``{'net': ..., 'net_E': <EMA weights>}``; others wrap in
    ``state_dict`` or ``model``; a flat state_dict is returned as is (minus ``module.``).
    """
    if use_ema and 'net_E' not in ckpt:
        raise KeyError(f'use_ema=True but the checkpoint has no "net_E" entry '
                       f'(top-level keys: {sorted(ckpt)[:10]}).')
    for key in (('net_E', ) if use_ema else ()) + ('state_dict', 'net', 'model'):
        if key in ckpt and isinstance(ckpt[key], Mapping):
            ckpt = ckpt[key]
            break
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in ckpt.items()}


def backbone_state_dict(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Backbone tensors of an official (flat) or OpenMMLab (``backbone.``) state_dict."""
    if any(k.startswith('backbone.') for k in state_dict):
        return {k[len('backbone.'):]: v for k, v in state_dict.items()
                if k.startswith('backbone.')}
    return {k: v for k, v in state_dict.items() if not k.startswith(HEAD_PREFIXES)}


def load_backbone_checkpoint(backbone: nn.Module, filename: str, use_ema: bool = False,
                             strict: bool = False) -> None:
    """Load the backbone part of ``filename``; list every missing/unexpected key loudly.

    A truncated file, another model's checkpoint (under half of the backbone's tensors
    found) or another variant's (any shape differs) raises ``CheckpointError`` naming it.
    """
    ckpt = read_checkpoint(filename, map_location='cpu')
    state = backbone_state_dict(unwrap_state_dict(ckpt, use_ema))
    arch = getattr(backbone, 'arch_settings', {}).get('embed_dims')
    report = check_state_dict_matches(
        filename, state, backbone.state_dict(), what=f'{type(backbone).__name__} backbone',
        hint=f'This backbone has embed_dims {arch}; give the weights of that variant.'
        if arch else '')
    if report.mismatched:  # load_state_dict(strict=False) would raise on them anyway
        raise CheckpointError(f'Checkpoint {filename} does not match this MobileMamba arch '
                              f'(wrong variant?): {report.summary()}')
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    problems = []
    if missing:
        problems.append(f'{len(missing)} missing keys (left at their init): '
                        + ', '.join(missing))
    if unexpected:
        problems.append(f'{len(unexpected)} unexpected keys (ignored): ' + ', '.join(unexpected))
    if problems:
        msg = f'Loading backbone weights from {filename}: ' + ' | '.join(problems)
        if strict:
            raise KeyError(msg)
        print_log(msg, logger='current', level=logging.WARNING)
    else:
        print_log(f'Loaded all {len(state)} backbone tensors from {filename}',
                  logger='current')


def official_key_to_mmpretrain(key: str) -> str:
    """Official classifier key -> our mmpretrain ImageClassifier key (BNLinearClsHead
    holds ``head``/``head_dist`` as children, so head keys gain one ``head.``)."""
    return ('head.' if key.startswith(HEAD_PREFIXES) else 'backbone.') + key


def official_to_mmpretrain(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename a whole official state_dict for the mmpretrain classifier, keeping order."""
    return {official_key_to_mmpretrain(k): v for k, v in state_dict.items()}
