"""Models. The backbone needs only torch + mmengine; modules built on a task library
(mmpretrain heads, mmdet necks) are registered only when that library imports."""
from importlib import import_module

from .backbones import MobileMamba


def _importable(name: str) -> bool:
    try:
        import_module(name)
    except ImportError:
        return False
    return True


__all__ = ['MobileMamba']
if _importable('mmpretrain'):
    from . import heads  # noqa: F401
    from . import classifiers  # noqa: F401
if _importable('mmdet'):
    from . import dense_heads, losses, necks  # noqa: F401
