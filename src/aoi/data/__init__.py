"""Datasets, annotation formats, image decoding and synthetic boards."""
