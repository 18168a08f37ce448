"""Counting on the gateway (edge mode): `python -m edge`. Needs numpy, pillow, requests and onnxruntime
(with an exported .onnx model) or torch (with .pt weights); OpenCV for streams; never Django."""
