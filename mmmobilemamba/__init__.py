"""MobileMamba for OpenMMLab. Importing registers every module into the MMEngine registries."""
from .models import MobileMamba  # noqa: F401

__version__ = '0.1.0'
