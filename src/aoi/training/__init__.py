"""Training (the only package that imports torch): candidate samples, the CNN, the loop, ONNX export."""
