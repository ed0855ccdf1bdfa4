"""Models. The backbone needs only torch + mmengine; modules built on a task library
(mmpretrain heads, mmdet necks) are registered only when that library imports. An installed
library that fails to import is reported once here and named again by the tools that need it
(``mmmobilemamba.utils.dependencies``)."""
import warnings

from ..utils.dependencies import is_installed, library_error
from .backbones import MobileMamba

__all__ = ['MobileMamba']
for _library in ('mmpretrain', 'mmdet'):
    if is_installed(_library) and library_error(_library) is not None:
        warnings.warn(f'MobileMamba modules for {_library} are not registered: '
                      f'{library_error(_library)}.')
if library_error('mmpretrain') is None:
    from . import heads  # noqa: F401
    from . import classifiers, data_preprocessors  # noqa: F401
if library_error('mmdet') is None:
    from . import dense_heads, losses, necks  # noqa: F401
