"""Custom operators; importable without mmcv or the task libraries."""
from .scan_chunked import scan_chunked
from .scan_reference import scan_reference
from .selective_scan import BACKENDS, register_backend, resolve_backend, selective_scan

__all__ = ['selective_scan', 'register_backend', 'resolve_backend', 'BACKENDS', 'scan_chunked',
           'scan_reference']
