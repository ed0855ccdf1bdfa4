"""Custom operators; importable without mmcv or the task libraries."""
from .selective_scan import selective_scan

__all__ = ['selective_scan']
