from .check_compile_hook import CheckCompileHook
from .check_invalid_loss_hook import CheckFiniteLossHook
from .cuda_graph_train_step_hook import CUDAGraphTrainStepHook
from .prefetch_batches_hook import BatchPrefetcher, PrefetchBatchesHook
from .random_state_hook import RandomStateHook
from .rank_mean_loss_hook import RankMeanLossHook
from .switch_to_deploy_hook import SwitchToDeployHook

__all__ = ['BatchPrefetcher', 'CheckCompileHook', 'CheckFiniteLossHook', 'CUDAGraphTrainStepHook',
           'PrefetchBatchesHook', 'RandomStateHook', 'RankMeanLossHook', 'SwitchToDeployHook']
