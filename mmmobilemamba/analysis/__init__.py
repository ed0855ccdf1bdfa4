"""Model analysis helpers (FLOPs counted as the paper counts them)."""
from .flops import CONVENTIONS, count_flops, scan_flop_handle

__all__ = ['CONVENTIONS', 'count_flops', 'scan_flop_handle']
