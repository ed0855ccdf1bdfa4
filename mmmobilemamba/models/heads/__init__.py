"""mmpretrain heads (imported only when mmpretrain is installed)."""
from .bn_linear_cls_head import BNLinearClsHead

__all__ = ['BNLinearClsHead']
