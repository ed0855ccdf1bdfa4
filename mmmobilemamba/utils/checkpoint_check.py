"""Check a checkpoint before it is loaded, so that a bad file fails with its name, what is
wrong with it and the fix, instead of a zip-reader trace or a silently half-random model.

One place for ``load_from`` / ``--resume`` (``tools/train.py``, ``tools/test.py`` through
``run_config.build_runner``) and ``init_cfg=dict(type='Pretrained')`` of the backbone.
Loading stays ``weights_only=True`` (``safe_load`` allow-lists MMEngine's types); a file
that needs more is refused with a hint, never re-read with ``weights_only=False``.
"""
import os.path as osp
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from typing import Dict, List, Mapping

import torch
from mmengine.runner import CheckpointLoader

#: Keys of an official MobileMamba classifier / bare backbone state_dict.
BARE_BACKBONE_PREFIXES = ('patch_embed.', 'blocks1.', 'blocks2.', 'blocks3.')


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: truncated, not torch, or of another model."""


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


def model_state_dict(checkpoint: Mapping) -> Dict[str, torch.Tensor]:
    """The model weights of an MMEngine or plain checkpoint, as MMEngine loads them
    (``state_dict`` entry if present, ``module.`` prefixes removed)."""
    state = checkpoint.get('state_dict', checkpoint)
    return {re.sub(r'^module\.', '', k): v for k, v in state.items()
            if isinstance(v, torch.Tensor)}


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
        for name, keys in (('missing', self.missing), ('with another shape', self.mismatched),
                           ('unexpected', self.unexpected)):
            if keys:
                more = f', ... ({len(keys) - limit} more)' if len(keys) > limit else ''
                parts.append(f'{len(keys)} {name}: ' + ', '.join(keys[:limit]) + more)
        return '; '.join(parts)


def compare_state_dicts(ckpt: Mapping[str, torch.Tensor],
                        own: Mapping[str, torch.Tensor]) -> KeyReport:
    """Missing, unexpected and shape-mismatched keys of ``ckpt`` against ``own``."""
    return KeyReport(
        num_model=len(own),
        missing=[k for k in own if k not in ckpt],
        unexpected=[k for k in ckpt if k not in own],
        mismatched=[f'{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}' for k, v in ckpt.items()
                    if k in own and tuple(v.shape) != tuple(own[k].shape)])


def check_state_dict_matches(filename: str, ckpt: Mapping[str, torch.Tensor],
                             own: Mapping[str, torch.Tensor], what: str = 'model',
                             min_match: float = 0.5, strict: bool = False,
                             hint: str = '') -> KeyReport:
    """Raise :class:`CheckpointError` when ``ckpt`` is not a checkpoint of ``own``.

    It is another model when fewer than ``min_match`` of ``own``'s tensors can be loaded
    from it; with ``strict`` any missing or reshaped key fails (extra keys never do: MMEngine
    lists them). Otherwise the report is returned (fine-tuning loads a different head).
    """
    report = compare_state_dicts(ckpt, own)
    loadable = report.num_model - report.num_bad
    if loadable >= min_match * report.num_model and not (strict and report.num_bad):
        return report
    if any(k.startswith(BARE_BACKBONE_PREFIXES) for k in ckpt) and not any(
            k.startswith(BARE_BACKBONE_PREFIXES) for k in own):
        holds = ('holds a bare MobileMamba backbone (official release layout); load it with '
                 "model.backbone.init_cfg=dict(type='Pretrained', checkpoint=...) or convert "
                 'it with tools/model_converters/mobilemamba_official_to_mm.py')
    elif _modules(ckpt) == _modules(own):
        holds = 'has the modules of this model with other shapes (another variant or size?)'
    else:
        holds = f'holds a model with modules {_modules(ckpt)}, this {what} has {_modules(own)}'
    raise CheckpointError(
        f'Checkpoint {filename} does not match this {what}: {report.num_bad} of '
        f'{report.num_model} keys do not match ({report.summary()}). It {holds}.'
        + (f' {hint}' if hint else ''))

