"""Model analysis helpers (FLOPs with the scan counted as the paper does)."""
from .flops import count_flops, scan_flop_handle

__all__ = ['count_flops', 'scan_flop_handle']
