"""Accuracy metrics: the DeepPCB protocol, per-class AP and the confusion matrix."""
