"""mmdet dense heads (import only where mmdet is installed)."""
from .ssd_head import FixedSSDHead

__all__ = ['FixedSSDHead']
