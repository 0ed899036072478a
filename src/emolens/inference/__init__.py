"""Inference on numpy, OpenCV and ONNX Runtime only (never torch)."""
