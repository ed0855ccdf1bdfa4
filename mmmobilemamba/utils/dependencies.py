"""Whether a task library (mmpretrain, mmdet, mmseg) can be used here, and why not.

An installed library can still fail to import: mmpretrain 1.2.0 imports its multimodal models
whenever transformers and pycocotools are installed, and those models do not load with
transformers >= 5. That must cost detection and segmentation users nothing, and classification
users must be told the fix instead of meeting a TypeError deep inside mmpretrain."""
import functools
import importlib
import importlib.metadata
import importlib.util
from typing import Optional

INSTALL_HINT = 'pip install -r requirements/runtime.txt'
TASK_LIBRARIES = ('mmpretrain', 'mmdet', 'mmseg')  # the default_scope of our configs


def is_installed(library: str) -> bool:
    try:
        return importlib.util.find_spec(library) is not None
    except ImportError:  # a finder that refuses the name
        return False


@functools.lru_cache(maxsize=None)
def library_error(library: str) -> Optional[str]:
    """None if ``library`` and its models import, else why not, with the fix. Cached: a
    broken import stays broken for the life of the process."""
    if not is_installed(library):
        return f'{library} is not installed; {INSTALL_HINT}'
    try:
        importlib.import_module(f'{library}.models')
    except Exception as err:  # ImportError, or TypeError from a class built on a missing base
        msg = f'{library} is installed but cannot be imported ({type(err).__name__}: {err})'
        transformers = _version('transformers')
        if library == 'mmpretrain' and transformers and int(transformers.split('.')[0]) >= 5:
            msg += (f'. mmpretrain 1.2.0 loads its multimodal models when transformers is '
                    f'installed, and they need transformers < 5 (found {transformers}): '
                    'pip install "transformers<5", or pip uninstall transformers if nothing '
                    'else here needs it')
        return msg
    return None


def require_library(library: str, what: str) -> None:
    """Raise a RuntimeError naming the fix if ``what`` cannot run because of ``library``."""
    err = library_error(library)
    if err is not None:
        raise RuntimeError(f'{what} needs {library}, but {err}.')


def _version(dist: str) -> Optional[str]:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
