"""Exchanging models with other frameworks: ONNX export (the graph and its weights, run by ONNX
Runtime and others) and safetensors weights (the state dict, no code). docs/exchange.md."""

from .onnx import export_onnx, to_onnx
from .safetensors import load_safetensors, save_safetensors

__all__ = ["export_onnx", "load_safetensors", "save_safetensors", "to_onnx"]
