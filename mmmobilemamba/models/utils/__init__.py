from .ema import ForeachExponentialMovingAverage
from .fusion import fuse_modules

__all__ = ['ForeachExponentialMovingAverage', 'fuse_modules']
