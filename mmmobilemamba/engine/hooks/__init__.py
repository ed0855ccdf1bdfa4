from .check_invalid_loss_hook import CheckFiniteLossHook
from .random_state_hook import RandomStateHook
from .rank_mean_loss_hook import RankMeanLossHook
from .switch_to_deploy_hook import SwitchToDeployHook

__all__ = ['CheckFiniteLossHook', 'RandomStateHook', 'RankMeanLossHook', 'SwitchToDeployHook']
