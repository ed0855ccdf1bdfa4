"""MobileMamba for OpenMMLab. Importing registers every module into the MMEngine registries
(mmpretrain / mmdet / mmseg find them by name) and, with mmpretrain installed, the
classification model names into its model hub; only torch and mmengine are required."""
from .utils import allow_mmengine_checkpoints
from .utils.model_index import register_mmpretrain_models

allow_mmengine_checkpoints()

from . import engine, models  # noqa: E402,F401
from .datasets import collate  # noqa: E402,F401  (registers one_storage_collate)
from .models import MobileMamba  # noqa: E402,F401

register_mmpretrain_models()

__version__ = '0.1.0'
