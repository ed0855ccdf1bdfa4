from .checkpoint_check import (CheckpointError, check_checkpoint_file, check_state_dict_matches,
                               compare_state_dicts, read_checkpoint)
from .data_check import check_dataset_paths, missing_dataset_paths
from .safe_load import allow_mmengine_checkpoints, checkpoint_safe_globals

__all__ = ['allow_mmengine_checkpoints', 'checkpoint_safe_globals', 'check_dataset_paths',
           'missing_dataset_paths', 'CheckpointError', 'check_checkpoint_file',
           'check_state_dict_matches', 'compare_state_dicts', 'read_checkpoint']
