"""Checkpoint files in one place: read them safely, unwrap the state_dict inside, check it
against a model, load a backbone, and convert between the official release layout and ours.

A bad file fails here with its name, what is wrong with it and the fix, instead of a
zip-reader trace or a silently half-random model. Loading stays ``weights_only=True``
(:func:`allow_mmengine_checkpoints` allow-lists MMEngine's own types); a file that needs more
is refused with a hint, never re-read with ``weights_only=False``.
"""
import builtins
import logging
import os
import os.path as osp
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.runner import CheckpointLoader
from torch import nn

#: Keys of an official MobileMamba classifier / bare backbone state_dict.
BARE_BACKBONE_PREFIXES = ('patch_embed.', 'blocks1.', 'blocks2.', 'blocks3.')
#: Keys of the official classifier's heads (``head_dist`` with distillation).
HEAD_PREFIXES = ('head.', 'head_dist.')
#: Where released files keep their weights: MMEngine's ``state_dict``, the reference
#: trainer's ``net`` (``net_E``: its EMA weights) and the common ``model``.
WRAPPER_KEYS = ('state_dict', 'net', 'model')


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: truncated, not torch, or of another model."""


# --- safe loading -----------------------------------------------------------------------

def checkpoint_safe_globals() -> list:
    """The globals an MMEngine checkpoint (meta, message hub, optimizer) refers to.

    MMEngine 0.10.7 calls ``torch.load`` without ``weights_only``, which since torch 2.6
    means ``weights_only=True``; that rejects the message hub's HistoryBuffer and NumPy
    scalars. ``builtins.getattr`` is needed because HistoryBuffer pickles bound methods;
    the weights-only unpickler still refuses to call anything that is not listed here.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    from numpy.core import multiarray  # the module path checkpoints record with numpy<2
    dtypes = [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith('DType')]
    return [HistoryBuffer, np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar,
            builtins.getattr] + dtypes


def allow_mmengine_checkpoints() -> None:
    """Allow-list MMEngine's types once per process, instead of the process-wide escape
    hatch ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` (no-op on torch without safe globals)."""
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(checkpoint_safe_globals())


# --- reading ----------------------------------------------------------------------------

def is_local(filename: str) -> bool:
    """MMEngine loads URLs and ``scheme://`` names itself; only local files are checked."""
    return '://' not in str(filename)


def check_checkpoint_file(filename: str) -> None:
    """Raise unless the local ``filename`` exists and looks like a complete torch file.

    A torch >= 1.6 checkpoint is a zip archive whose central directory sits at the very end
    of the file, so a truncated download or an interrupted save has none.
    """
    if not is_local(filename):
        return
    path = osp.expanduser(filename)
    if not osp.isfile(path):
        raise FileNotFoundError(f'Checkpoint {filename} does not exist; check the path given '
                                'to load_from, --resume or init_cfg.checkpoint.')
    size = osp.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(4)
    if head.startswith(b'PK'):
        if not zipfile.is_zipfile(path):
            raise CheckpointError(
                f'Checkpoint {filename} ({size} bytes) is truncated or not a torch checkpoint '
                '(zip central directory missing): the download or the save was cut short. '
                'Re-download it, or resume from an earlier checkpoint.')
        with zipfile.ZipFile(path) as archive:
            if not any(n.endswith('data.pkl') for n in archive.namelist()):
                raise CheckpointError(f'Checkpoint {filename} is a zip archive but not a torch '
                                      'checkpoint (no data.pkl inside).')
        return
    if head[:1] == b'\x80':  # torch < 1.6 pickle format: torch.load checks it
        return
    what = 'is empty' if size == 0 else f'starts with {head!r}'
    raise CheckpointError(f'Checkpoint {filename} ({size} bytes) {what}, which is not a torch '
                          'checkpoint (an HTML error page or an unfinished download?). '
                          'Re-download it.')


def read_checkpoint(filename: str, map_location: str = 'cpu') -> dict:
    """:func:`check_checkpoint_file`, then MMEngine's loader (``weights_only=True``)."""
    check_checkpoint_file(filename)
    try:
        return CheckpointLoader.load_checkpoint(filename, map_location=map_location)
    except pickle.UnpicklingError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()] or [type(e).__name__]
        first = next((ln for ln in lines if 'Unsupported global' in ln), lines[0])
        raise CheckpointError(
            f'Checkpoint {filename} holds Python objects that torch.load(weights_only=True) '
            f'refuses: {first}. mmmobilemamba does not fall back to unsafe loading. Only if '
            'you trust the file, re-save its weights: python -c "import torch; '
            f"c = torch.load('{filename}', weights_only=False); "
            "torch.save(c.get('state_dict', c), 'weights.pth')\"") from e
    except RuntimeError as e:
        if 'PytorchStreamReader' not in str(e):
            raise
        raise CheckpointError(f'Checkpoint {filename} is damaged ({str(e).splitlines()[0]}); '
                              're-download it.') from e


# --- unwrapping -------------------------------------------------------------------------

def unwrap_state_dict(checkpoint: Mapping, use_ema: bool = False,
                      wrappers: Sequence[str] = WRAPPER_KEYS) -> Dict[str, torch.Tensor]:
    """The tensors of the flat state_dict inside ``checkpoint``, without ``module.``.

    The first of ``wrappers`` present is taken (``use_ema``: the reference trainer's EMA
    weights ``net_E`` first); a flat state_dict is used as is. ``wrappers=('state_dict',)``
    reads a file exactly as MMEngine's runner does.
    """
    if use_ema and 'net_E' not in checkpoint:
        raise KeyError(f'use_ema=True but the checkpoint has no "net_E" entry '
                       f'(top-level keys: {sorted(checkpoint)[:10]}); set use_ema=False.')
    for key in (('net_E', ) if use_ema else ()) + tuple(wrappers):
        if isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    return {re.sub(r'^module\.', '', k): v for k, v in checkpoint.items()
            if isinstance(v, torch.Tensor)}


def backbone_state_dict(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Backbone tensors of an official (flat) or OpenMMLab (``backbone.``) state_dict."""
    if any(k.startswith('backbone.') for k in state_dict):
        return {k[len('backbone.'):]: v for k, v in state_dict.items()
                if k.startswith('backbone.')}
    return {k: v for k, v in state_dict.items() if not k.startswith(HEAD_PREFIXES)}


# --- checking ---------------------------------------------------------------------------

def _modules(keys) -> str:
    names = sorted({k.split('.')[0] for k in keys})
    return '[' + ', '.join(names[:8]) + (', ...' if len(names) > 8 else '') + ']'


@dataclass
class KeyReport:
    """How a checkpoint's tensors line up with a model's."""
    num_model: int
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[str] = field(default_factory=list)  # 'key: ckpt shape vs model shape'

    @property
    def num_bad(self) -> int:
        return len(self.missing) + len(self.mismatched)

    def summary(self, limit: int = 5) -> str:
        parts = []
        for name, keys in (('with another shape', self.mismatched),
                           ('missing', self.missing), ('unexpected', self.unexpected)):
            if keys:
                more = f', ... ({len(keys) - limit} more)' if len(keys) > limit else ''
                parts.append(f'{len(keys)} {name}: ' + ', '.join(keys[:limit]) + more)
        return '; '.join(parts)


def compare_state_dicts(ckpt: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor],
                        prefix: str = '') -> KeyReport:
    """Missing, unexpected and shape-mismatched keys of ``ckpt`` against ``own``; the keys
    are reported with ``prefix`` (where the tensors sit in the whole model)."""
    return KeyReport(
        num_model=len(own),
        missing=[prefix + k for k in own if k not in ckpt],
        unexpected=[prefix + k for k in ckpt if k not in own],
        mismatched=[f'{prefix}{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
                    for k, v in ckpt.items()
                    if k in own and tuple(v.shape) != tuple(own[k].shape)])


def check_state_dict_matches(filename: Optional[str], ckpt: Mapping[str, torch.Tensor],
                             own: Mapping[str, torch.Tensor], what: str = 'model',
                             min_match: float = 0.5, strict: bool = False,
                             reshaped_fails: bool = False, hint: str = '',
                             prefix: str = '') -> KeyReport:
    """Raise :class:`CheckpointError` when ``ckpt`` is not a checkpoint of ``own``.

    It is another model when fewer than ``min_match`` of ``own``'s tensors can be loaded
    from it; with ``strict`` any missing or reshaped key fails, with ``reshaped_fails`` any
    reshaped one (a loader would skip it and leave it random). Extra keys never fail
    (MMEngine lists them). Otherwise the report is returned (fine-tuning loads another
    head). ``filename`` None: the tensors come from a loader that does not say its file;
    ``prefix`` is where ``own`` sits in the model being loaded.
    """
    report = compare_state_dicts(ckpt, own, prefix)
    loadable = report.num_model - report.num_bad
    if (loadable >= min_match * report.num_model and not (strict and report.num_bad)
            and not (reshaped_fails and report.mismatched)):
        return report
    if any(k.startswith(BARE_BACKBONE_PREFIXES) for k in ckpt) and not any(
            k.startswith(BARE_BACKBONE_PREFIXES) for k in own):
        holds = ('holds a bare MobileMamba backbone (official release layout); load it with '
                 "model.backbone.init_cfg=dict(type='Pretrained', checkpoint=...) or convert "
                 'it with tools/model_converters/mobilemamba_official_to_mm.py')
    elif _modules(ckpt) == _modules(own):
        holds = ('has the modules of this model with other keys or shapes (another variant '
                 'or size?)')
    else:
        holds = f'holds a model with modules {_modules(ckpt)}, this {what} has {_modules(own)}'
    if filename:
        source = f'Checkpoint {filename}'
    else:
        source = f"The checkpoint's {prefix}* part" if prefix else 'The checkpoint'
    raise CheckpointError(
        f'{source} does not match this {what}: {report.num_bad} of {report.num_model} keys '
        f'do not match ({report.summary()}). It {holds}.' + (f' {hint}' if hint else ''))


def checkpoint_arch(state_dict: Mapping[str, torch.Tensor]) -> Optional[dict]:
    """``embed_dims`` and ``depths`` of the MobileMamba whose (unprefixed) state_dict this
    is, read from its keys and shapes (fused or not); None if it is not one.

    Stage ``i`` is ``blocks{i}``; stages 2 and 3 start with 3 transition modules, and the
    first tensor of each stage's last block is a depthwise conv of the stage's width.
    """
    dims, depths = [], []
    for stage in (1, 2, 3):
        keys = [k for k in state_dict if k.startswith(f'blocks{stage}.')]
        indices = sorted({int(k.split('.')[1]) for k in keys if k.split('.')[1].isdigit()})
        transitions = 3 if stage > 1 else 0
        if len(indices) <= transitions:
            return None
        last = [state_dict[k] for k in keys if k.startswith(f'blocks{stage}.{indices[-1]}.')]
        if not last[0].dim():
            return None
        dims.append(int(last[0].shape[0]))
        depths.append(len(indices) - transitions)
    return dict(embed_dims=dims, depths=depths)


# --- loading a backbone -----------------------------------------------------------------

def load_backbone_checkpoint(backbone: nn.Module, filename: str, use_ema: bool = False,
                             strict: bool = False) -> None:
    """Load the backbone part of ``filename`` into a MobileMamba; list every missing or
    unexpected key loudly (``strict``: raise on them).

    A truncated file, another model's checkpoint (under half of the backbone's tensors
    found) or another variant's (any shape differs) raises ``CheckpointError`` naming it.
    """
    state = backbone_state_dict(unwrap_state_dict(read_checkpoint(filename), use_ema))
    backbone.check_checkpoint_tensors(state, filename=filename)
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


# --- converting -------------------------------------------------------------------------

def official_key_to_mmpretrain(key: str) -> str:
    """Official classifier key -> our mmpretrain ImageClassifier key (BNLinearClsHead
    holds ``head``/``head_dist`` as children, so head keys gain one ``head.``)."""
    return ('head.' if key.startswith(HEAD_PREFIXES) else 'backbone.') + key


def official_to_mmpretrain(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename a whole official state_dict for the mmpretrain classifier, keeping order."""
    return {official_key_to_mmpretrain(k): v for k, v in state_dict.items()}


def mmpretrain_to_official(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The inverse of :func:`official_to_mmpretrain`: our classifier's state_dict in the
    official layout (what the reference code's ``load_state_dict`` takes)."""
    out = {}
    for key, value in state_dict.items():
        head, _, rest = key.partition('.')
        if head not in ('backbone', 'head') or (head == 'head'
                                                and not rest.startswith(HEAD_PREFIXES)):
            raise CheckpointError(f'{key!r} is not a key of a MobileMamba ImageClassifier '
                                  '(backbone.* or head.head.* / head.head_dist.*); give the '
                                  'state_dict of a model built from configs/classification.')
        out[rest] = value
    return out


def convert_checkpoint(src: str, dst: str, use_ema: bool = False,
                       to_official: bool = False) -> Dict[str, torch.Tensor]:
    """Convert ``src`` (official -> mmpretrain, or mmpretrain -> official with
    ``to_official``), save it as ``dst`` and return the converted state_dict."""
    state = unwrap_state_dict(read_checkpoint(src), use_ema)
    if to_official:
        state = mmpretrain_to_official(state)
        out = dict(model=state)
    else:
        if not any(k.startswith('patch_embed.0.') for k in state):
            raise CheckpointError(
                f'{src} does not look like an official MobileMamba checkpoint: no '
                f'patch_embed.0 weights among its {len(state)} tensors (modules '
                f'{_modules(state)}). An mmpretrain checkpoint (backbone.*) needs no '
                'conversion; to go the other way pass to_official=True (--to-official).')
        state = official_to_mmpretrain(state)
        out = dict(state_dict=state, meta=dict(converted_from=osp.abspath(src), ema=use_ema))
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save(out, dst)
    return state
