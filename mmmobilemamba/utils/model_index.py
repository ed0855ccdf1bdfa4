"""Our classification model names in mmpretrain's model hub, so that
``mmpretrain.get_model('mobilemamba_s6_8xb128_in1k')``, ``list_models('*mobilemamba*')`` and
``inference_model`` find them as they find mmpretrain's own.

Only ``configs/classification/metafile.yml`` is registered: mmpretrain builds every hub
name with its own registry, so detectors and segmentors (also in ``model-index.yml``) are
reached through their config paths instead.
"""
import logging
import os.path as osp

from mmengine.logging import print_log

from .dependencies import library_error

PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))
METAFILE = osp.join('configs', 'classification', 'metafile.yml')


def resource_root() -> str:
    """The folder holding ``configs/`` and ``model-index.yml``: the clone when the package
    runs from one (editable install), else the ``.mim`` folder an installed wheel carries."""
    candidates = (osp.dirname(PACKAGE_DIR), osp.join(PACKAGE_DIR, '.mim'))
    for root in candidates:
        if osp.isfile(osp.join(root, METAFILE)):
            return root
    raise FileNotFoundError(f'mmmobilemamba cannot find its configs ({METAFILE}) in '
                            f'{" or ".join(candidates)}: reinstall it from a clone '
                            '(pip install . ships them; pip install -e . uses the clone).')


_registered = []  # the metafile registered in this process, at most one


def register_mmpretrain_models() -> None:
    """Register our classification models with mmpretrain's ModelHub, once, with absolute
    config paths; nothing to do without a working mmpretrain (an optional dependency, whose
    import failure ``mmmobilemamba.models`` reports)."""
    if _registered or library_error('mmpretrain') is not None:
        return
    from mmpretrain.apis.model import ModelHub
    try:
        root = resource_root()
    except FileNotFoundError as e:  # importing the backbone must not need the configs
        print_log(f'{e} mmpretrain.get_model will not know the MobileMamba names; '
                  'give config paths instead.', logger='current', level=logging.WARNING)
        return
    ModelHub.register_model_index(osp.join(root, METAFILE), config_prefix=root)
    _registered.append(osp.join(root, METAFILE))
