"""eventface's face engine: pure compute from image bytes to templates (numpy, cv2, onnxruntime)."""
