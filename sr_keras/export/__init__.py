"""Export a trained generator for serving: TF Serving SavedModels and ONNX files."""

from sr_keras.export.onnx_export import OnnxExportError, export_onnx
from sr_keras.export.saved_model import SIGNATURES, VersionExistsError, export_saved_model

__all__ = ["SIGNATURES", "OnnxExportError", "VersionExistsError", "export_onnx", "export_saved_model"]
