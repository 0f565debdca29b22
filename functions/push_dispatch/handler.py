"""Lambda entry point of push dispatch (event source: the ``notifications`` SQS FIFO queue)."""

from eventface.consumers.push_dispatch import lambda_handler

__all__ = ["lambda_handler"]
