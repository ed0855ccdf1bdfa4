from .fp32_focal_loss import FP32FocalLoss

__all__ = ['FP32FocalLoss']
