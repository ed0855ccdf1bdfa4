from .hooks import SwitchToDeployHook
from .optimizers import MergedGroupsOptimWrapperConstructor

__all__ = ['MergedGroupsOptimWrapperConstructor', 'SwitchToDeployHook']
