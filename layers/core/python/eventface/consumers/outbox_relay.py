"""Outbox relay: moves the messages a transaction wrote to the outbox table onto their queues.

Lambda runs it on the outbox table's DynamoDB stream (``functions/outbox_relay/handler.py``; the
local event pump polls the stream and calls the same handler). Only INSERT records carry work:
TTL removals are ignored. A record that cannot be sent is reported as a batch item failure
(Powertools), so Lambda retries from it; already-sent records repeat harmlessly, because FIFO
queues deduplicate on the message id and consumers on the job id.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)

from eventface.adapters.sqs_queue import NOTIFICATIONS, SIGHTINGS, QueueMessage, SqsSender
from eventface.observability import logger
from eventface.settings import SettingsError, get_settings


def message_of(record: DynamoDBRecord) -> QueueMessage | None:
    """The queue message of an outbox stream record; None for records that carry none."""
    if record.event_name is not DynamoDBRecordEventName.INSERT or record.dynamodb is None:
        return None
    image = record.dynamodb.new_image
    try:
        return QueueMessage(
            message_id=str(image["message_id"]),
            queue=str(image["queue"]),
            body=str(image["body"]),
            group_id=str(image["group_id"]),
            kind=str(image["kind"]),
        )
    except KeyError as exc:
        raise ValueError(f"outbox item without {exc.args[0]!r}: it was not written by this code") from exc


@functools.cache
def default_sender() -> SqsSender:
    """The process's sender (queue URLs from the settings)."""
    settings = get_settings()
    urls = {NOTIFICATIONS: settings.notification_queue_url}
    with contextlib.suppress(SettingsError):  # a deployment without VIP detection has no such queue
        urls[SIGHTINGS] = settings.sighting_queue_url
    return SqsSender(urls)


def relay(event: dict[str, Any], context: Any, sender: SqsSender | None = None) -> dict[str, Any]:
    """Send the batch's new outbox items; Powertools' partial batch response."""
    out = sender or default_sender()

    def send(record: DynamoDBRecord) -> None:
        message = message_of(record)
        if message is not None:
            out.send(message)
            logger.info("outbox message relayed", extra={"queue": message.queue, "kind": message.kind})

    processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
    return dict(
        process_partial_response(event=event, record_handler=send, processor=processor, context=context)
    )


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point (DynamoDB stream of the outbox table, ReportBatchItemFailures)."""
    return relay(event, context)
