"""Face detection (MTCNN on ONNX Runtime) and alignment into the LFW deep-funneled frame, torch-free."""
