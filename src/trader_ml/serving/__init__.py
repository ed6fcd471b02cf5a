"""Serving: ONNX models through onnxruntime, rule baselines as fallback (numpy and stdlib only)."""
