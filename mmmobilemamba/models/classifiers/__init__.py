"""mmpretrain classifiers (imported only when mmpretrain is installed)."""
from .distill_classifier import KDImageClassifier

__all__ = ['KDImageClassifier']
