"""mmdet necks (imported only when mmdet is installed)."""
from .efficientvit_fpn import EfficientViTFPN

__all__ = ['EfficientViTFPN']
