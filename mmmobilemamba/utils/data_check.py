"""Fail early, with the expected paths, when a config's dataset is not on disk.

Without this a missing dataset surfaces as a stack trace deep inside a dataloader worker.
"""
import os.path as osp
from typing import List

from mmengine.config import Config

SPLITS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _datasets(cfg: dict) -> List[dict]:
    """Leaf dataset configs, unwrapping RepeatDataset/ConcatDataset-style wrappers."""
    if 'datasets' in cfg:
        return [leaf for d in cfg['datasets'] for leaf in _datasets(d)]
    if 'dataset' in cfg:
        return _datasets(cfg['dataset'])
    return [cfg]


def missing_dataset_paths(cfg: Config, splits=SPLITS) -> List[str]:
    """Annotation files and image/label folders named by ``cfg`` that do not exist."""
    missing = []
    for split in splits:
        loader = cfg.get(split)
        if not loader:
            continue
        for ds in _datasets(loader['dataset']):
            root = ds.get('data_root') or ''
            prefix = ds.get('data_prefix') or ds.get('split') or {}  # ImageNet: split
            prefixes = [prefix] if isinstance(prefix, str) else list(prefix.values())
            for rel in [ds.get('ann_file')] + prefixes:
                if not rel or '://' in str(rel) or '://' in root:
                    continue
                path = osp.join(root, rel)
                if not osp.exists(path) and path not in missing:
                    missing.append(path)
    return missing


def check_dataset_paths(cfg: Config, splits=SPLITS) -> None:
    """Raise ``FileNotFoundError`` listing every missing dataset path of ``cfg``."""
    missing = missing_dataset_paths(cfg, splits)
    if missing:
        raise FileNotFoundError(
            f'Dataset not found for config {cfg.filename}. Missing:\n  '
            + '\n  '.join(missing)
            + '\nPut the data in that layout (see docs/datasets.md) or point the config at '
            "it, e.g. --cfg-options train_dataloader.dataset.data_root=/path/to/data/ "
            '(and the same for val/test).')
