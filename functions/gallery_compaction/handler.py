"""Lambda entry point of the gallery erasure sweep (event source: an EventBridge schedule, every
``EVENTFACE_GALLERY_SWEEP_MINUTES``)."""

from eventface.consumers.gallery_compaction import lambda_handler

__all__ = ["lambda_handler"]
