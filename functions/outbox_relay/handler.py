"""Lambda entry point of the outbox relay (event source: the outbox table's DynamoDB stream)."""

from eventface.consumers.outbox_relay import lambda_handler

__all__ = ["lambda_handler"]
