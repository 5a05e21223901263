"""Compression and export: structured/unstructured pruning (`prune`), ONNX export with parity checks (`export`),
int8 quantization with ONNX Runtime or torchao (`quantize`). ONNX folders are run by `onnx_model`."""
