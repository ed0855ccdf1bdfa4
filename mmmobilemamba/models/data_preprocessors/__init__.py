"""The recipe's training augmentation on the GPU (needs mmpretrain)."""
from .gpu_augment import GPUTrainAugment
from .gpu_augment_cls_data_preprocessor import (DrawGPUAugment, GPUAugmentClsDataPreprocessor,
                                                use_gpu_augment)

__all__ = ['DrawGPUAugment', 'GPUAugmentClsDataPreprocessor', 'GPUTrainAugment',
           'use_gpu_augment']
