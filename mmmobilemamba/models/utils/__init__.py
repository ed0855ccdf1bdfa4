from .checkpoint import (backbone_state_dict, load_backbone_checkpoint,
                         official_key_to_mmpretrain, official_to_mmpretrain, unwrap_state_dict)
from .fusion import fuse_modules

__all__ = ['backbone_state_dict', 'load_backbone_checkpoint', 'official_key_to_mmpretrain',
           'official_to_mmpretrain', 'unwrap_state_dict', 'fuse_modules']
