from .backbones import MobileMamba  # noqa: F401
