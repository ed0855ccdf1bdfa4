"""Export for deployment: ONNX (tools/deployment/pytorch2onnx.py), traced in the export
formulation (``export_formulation``)."""
from .formulation import export_formulation
from .onnx_export import (default_img_size, export_onnx, load_for_export, onnxruntime_session,
                          relative_error, verify_onnx)

__all__ = ['default_img_size', 'export_formulation', 'export_onnx', 'load_for_export',
           'onnxruntime_session', 'relative_error', 'verify_onnx']
