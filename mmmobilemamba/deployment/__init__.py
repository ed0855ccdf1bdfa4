"""Export for deployment: ONNX (tools/deployment/pytorch2onnx.py)."""
from .onnx_export import (default_img_size, export_onnx, load_for_export, onnxruntime_session,
                          verify_onnx)

__all__ = ['default_img_size', 'export_onnx', 'load_for_export', 'onnxruntime_session',
           'verify_onnx']
