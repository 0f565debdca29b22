"""Lambda entry point of VIP enrichment (event source: the ``sightings`` SQS FIFO queue)."""

from eventface.consumers.vip_enrich import lambda_handler

__all__ = ["lambda_handler"]
