from .checkpoint import (CheckpointError, allow_mmengine_checkpoints, backbone_state_dict,
                         check_checkpoint_file, check_state_dict_matches, checkpoint_arch,
                         checkpoint_safe_globals, compare_state_dicts, convert_checkpoint,
                         load_backbone_checkpoint, mmpretrain_to_official,
                         official_key_to_mmpretrain, official_to_mmpretrain, read_checkpoint,
                         unwrap_state_dict)
from .data_check import check_dataset_paths, missing_dataset_paths

__all__ = ['CheckpointError', 'allow_mmengine_checkpoints', 'backbone_state_dict',
           'check_checkpoint_file', 'check_state_dict_matches', 'checkpoint_arch',
           'checkpoint_safe_globals', 'compare_state_dicts', 'convert_checkpoint',
           'load_backbone_checkpoint', 'mmpretrain_to_official', 'official_key_to_mmpretrain',
           'official_to_mmpretrain', 'read_checkpoint', 'unwrap_state_dict',
           'check_dataset_paths', 'missing_dataset_paths']
