from .hooks import SwitchToDeployHook

__all__ = ['SwitchToDeployHook']
