from .fusion import fuse_modules

__all__ = ['fuse_modules']
