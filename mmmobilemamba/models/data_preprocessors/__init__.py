"""The recipe's training decode and augmentation on the GPU (needs mmpretrain)."""
from .gpu_augment import GPUTrainAugment
from .gpu_augment_cls_data_preprocessor import (GPUAugmentClsDataPreprocessor, LoadImageBytes,
                                                decode_images, use_gpu_augment)

__all__ = ['GPUAugmentClsDataPreprocessor', 'GPUTrainAugment', 'LoadImageBytes',
           'decode_images', 'use_gpu_augment']
