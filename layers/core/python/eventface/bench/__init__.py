"""Benchmarks of the face engine against OpenCV's own pipeline (``eventface bench ...``)."""
