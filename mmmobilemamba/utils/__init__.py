from .data_check import check_dataset_paths, missing_dataset_paths
from .safe_load import allow_mmengine_checkpoints, checkpoint_safe_globals

__all__ = ['allow_mmengine_checkpoints', 'checkpoint_safe_globals', 'check_dataset_paths',
           'missing_dataset_paths']
