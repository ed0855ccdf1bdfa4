from .checkpoint import backbone_state_dict, load_backbone_checkpoint, unwrap_state_dict
from .fusion import fuse_modules

__all__ = ['backbone_state_dict', 'load_backbone_checkpoint', 'unwrap_state_dict',
           'fuse_modules']
