"""MobileMamba for OpenMMLab. Importing registers every module into the MMEngine registries
(mmpretrain / mmdet / mmseg find them by name); only torch and mmengine are required."""
from .utils import allow_mmengine_checkpoints

allow_mmengine_checkpoints()

from . import engine, models  # noqa: E402,F401
from .models import MobileMamba  # noqa: E402,F401

__version__ = '0.1.0'
