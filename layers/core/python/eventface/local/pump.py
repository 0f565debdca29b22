"""The local event pump: what Lambda's event source mappings do, a thread per source.

**Queues.** It long-polls each queue that has a registered consumer, hands the messages to the consumer as a
Lambda SQS event (``{"Records": [...]}``) and deletes the ones that did not fail. A consumer
returns Powertools' partial batch response (``{"batchItemFailures": [{"itemIdentifier": id}]}``):
failed messages stay on the queue, come back after the visibility timeout and, after the
queue's ``maxReceiveCount``, move to its dead-letter queue. A consumer that raises fails the
whole batch, as on Lambda.

**DynamoDB streams.** It reads each registered table's stream from the start (TRIM_HORIZON),
hands the records to the consumer as a Lambda stream event and moves on; a batch item failure
(the record's sequence number) makes it read again from that record after a pause, as Lambda's
``ReportBatchItemFailures`` does.

**Schedules.** It invokes each scheduled consumer with an EventBridge "Scheduled Event" every
period, the first time one period after it starts (as a ``rate(...)`` rule does); a consumer
that raises is logged and runs again at the next period.

Consumers are registered by logical queue name (``notifications`` → push_dispatch, ``sightings``
→ vip_enrich) in :data:`CONSUMERS`, by logical table name (``outbox``) in
:data:`STREAM_CONSUMERS` and by schedule name (``gallery_compaction``) in
:data:`SCHEDULED_CONSUMERS`, as ``"module:function"`` (the code behind the function's Lambda entry
point, ``lambda_handler``), so the stack imports them only when it starts. A queue with no
consumer is not polled: its messages stay there.
"""

from __future__ import annotations

import functools
import importlib
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from eventface import aws

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]

#: Logical queue name -> "module:function" of its consumer.
CONSUMERS: Final[dict[str, str]] = {
    "notifications": "eventface.consumers.push_dispatch:lambda_handler",
    "sightings": "eventface.consumers.vip_enrich:lambda_handler",
}
#: Logical table name -> "module:function" of the consumer of its stream.
STREAM_CONSUMERS: Final[dict[str, str]] = {"outbox": "eventface.consumers.outbox_relay:lambda_handler"}
#: Schedule name -> "module:function" of its consumer (the period comes from the settings).
SCHEDULED_CONSUMERS: Final[dict[str, str]] = {
    "gallery_compaction": "eventface.consumers.gallery_compaction:lambda_handler"
}
#: Pause between reads of a stream that had nothing new (Lambda polls a shard about 4 times a second).
STREAM_IDLE_SECONDS: Final = 0.1
STREAM_BATCH_SIZE: Final = 100
#: Long-poll wait; also bounds how long stopping the pump takes.
WAIT_SECONDS: Final = 1
BATCH_SIZE: Final = 10
_REGION: Final = "us-east-1"


def load_handler(reference: str) -> Handler:
    """The function named by ``"module:function"``."""
    module_name, _, function_name = reference.partition(":")
    if not module_name or not function_name:
        raise ValueError(f"consumer {reference!r} must be written 'module:function'")
    handler: Handler = getattr(importlib.import_module(module_name), function_name)
    return handler


@dataclass
class LambdaContext:
    """The attributes of a Lambda context that handlers and Powertools read."""

    function_name: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{_REGION}:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """Messages from ReceiveMessage in the shape Lambda delivers them."""
    records = []
    for message in messages:
        attributes = {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value.get("DataType", "String"),
            }
            for name, value in message.get("MessageAttributes", {}).items()
        }
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": attributes,
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": _REGION,
            }
        )
    return {"Records": records}


def stream_event(records: list[dict[str, Any]], stream_arn: str) -> dict[str, Any]:
    """Records from GetRecords in the shape Lambda delivers them (creation time in epoch seconds)."""
    shaped = []
    for record in records:
        change = dict(record["dynamodb"])
        created = change.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            change["ApproximateCreationDateTime"] = int(created.timestamp())
        shaped.append(
            {
                "eventID": record.get("eventID", ""),
                "eventName": record["eventName"],
                "eventVersion": record.get("eventVersion", "1.1"),
                "eventSource": "aws:dynamodb",
                "awsRegion": _REGION,
                "dynamodb": change,
                "eventSourceARN": stream_arn,
            }
        )
    return {"Records": shaped}


def scheduled_event(rule: str, at: datetime) -> dict[str, Any]:
    """The event an EventBridge schedule rule named ``rule`` delivers at ``at``."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": _REGION,
        "resources": [f"arn:aws:events:{_REGION}:123456789012:rule/{rule}"],
        "detail": {},
    }


def _failed(response: Any) -> list[str]:
    """The item identifiers of a Powertools partial batch response."""
    return [
        str(item.get("itemIdentifier"))
        for item in (response or {}).get("batchItemFailures", [])
        if isinstance(item, dict)
    ]


class EventPump:
    """Polls queues and streams, a thread each, and invokes their consumers (see the module
    docstring).

    Parameters
    ----------
    consumers
        Queue URL -> handler (``lambda_handler(event, context)``).
    stream_consumers
        DynamoDB stream ARN -> handler.
    schedules
        Schedule name -> (period in seconds, handler).
    sqs_client, streams_client
        Default to ``eventface.aws.client("sqs")`` and ``("dynamodbstreams")``.
    """

    def __init__(
        self,
        consumers: Mapping[str, Handler],
        *,
        stream_consumers: Mapping[str, Handler] | None = None,
        schedules: Mapping[str, tuple[float, Handler]] | None = None,
        sqs_client: Any | None = None,
        streams_client: Any | None = None,
    ) -> None:
        self._consumers = dict(consumers)
        self._stream_consumers = dict(stream_consumers or {})
        self._schedules = dict(schedules or {})
        self._client = sqs_client
        self._streams_client = streams_client
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._arns: dict[str, str] = {}
        self._iterators: dict[tuple[str, str], str | None] = {}

    def _sqs(self) -> Any:
        if self._client is None:
            self._client = aws.client("sqs")
        return self._client

    def _streams(self) -> Any:
        if self._streams_client is None:
            self._streams_client = aws.client("dynamodbstreams")
        return self._streams_client

    def start(self) -> None:
        """Start a polling thread per source (none when nothing is registered)."""
        sources: list[tuple[str, Callable[[], int]]] = [
            (url, functools.partial(self.poll_once, url, handler)) for url, handler in self._consumers.items()
        ]
        sources += [
            (arn, functools.partial(self.poll_stream_once, arn, handler))
            for arn, handler in self._stream_consumers.items()
        ]
        sources += [
            (name, functools.partial(self.run_schedule_once, name, period, handler))
            for name, (period, handler) in self._schedules.items()
        ]
        for name, poll in sources:
            thread = threading.Thread(target=self._run, args=(name, poll), name="event-pump", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop after the current poll (at most WAIT_SECONDS plus the batch in hand)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=WAIT_SECONDS + 30)

    def _run(self, source: str, poll: Callable[[], int]) -> None:
        while not self._stop.is_set():
            try:
                poll()
            except Exception:
                # Like an event source mapping: log, back off, keep polling.
                logger.exception("event pump: polling %s failed", source)
                self._stop.wait(WAIT_SECONDS)

    def run_schedule_once(self, name: str, period: float, handler: Handler) -> int:
        """Wait ``period`` seconds, then invoke ``handler`` with a scheduled event; 1 if it ran
        (0 when the pump stopped meanwhile). A consumer that raises is logged, as Lambda would."""
        if self._stop.wait(period):
            return 0
        try:
            handler(scheduled_event(name, datetime.now(UTC)), LambdaContext(name))
        except Exception:
            logger.exception("event pump: the scheduled consumer %s failed", name)
        return 1

    def poll_stream_once(self, stream_arn: str, handler: Handler) -> int:
        """Read each shard of ``stream_arn`` once and hand new records to ``handler``; how many.

        Waits :data:`STREAM_IDLE_SECONDS` when there was nothing, and :data:`WAIT_SECONDS` after a
        failure (the failed records are read again).
        """
        streams = self._streams()
        shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"].get("Shards", [])
        handed = 0
        for shard in shards:
            key = (stream_arn, shard["ShardId"])
            if key not in self._iterators:
                self._iterators[key] = streams.get_shard_iterator(
                    StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            iterator = self._iterators[key]
            if iterator is None:  # a closed shard, read to its end
                continue
            answer = streams.get_records(ShardIterator=iterator, Limit=STREAM_BATCH_SIZE)
            records: list[dict[str, Any]] = answer.get("Records", [])
            self._iterators[key] = answer.get("NextShardIterator")
            if not records:
                continue
            handed += len(records)
            name = stream_arn.split("/")[1] if "/" in stream_arn else "stream"
            try:
                failed = _failed(handler(stream_event(records, stream_arn), LambdaContext(name)))
            except Exception:
                logger.exception("event pump: the consumer of %s failed the whole batch", stream_arn)
                failed = [records[0]["dynamodb"]["SequenceNumber"]]
            if failed:
                # Read again from the first failure (and after it), as Lambda does.
                first = min(failed, key=int)
                self._iterators[key] = streams.get_shard_iterator(
                    StreamArn=stream_arn,
                    ShardId=shard["ShardId"],
                    ShardIteratorType="AT_SEQUENCE_NUMBER",
                    SequenceNumber=first,
                )["ShardIterator"]
                self._stop.wait(WAIT_SECONDS)
        if not handed:
            self._stop.wait(STREAM_IDLE_SECONDS)
        return handed

    def poll_once(self, queue_url: str, handler: Handler) -> int:
        """Receive one batch from ``queue_url`` and hand it to ``handler``; the messages received."""
        answer = self._sqs().receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=BATCH_SIZE,
            WaitTimeSeconds=WAIT_SECONDS,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = answer.get("Messages", [])
        if not messages:
            return 0
        if queue_url not in self._arns:
            self._arns[queue_url] = self._sqs().get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
        name = queue_url.rsplit("/", 1)[-1].removesuffix(".fifo")
        try:
            response = handler(sqs_event(messages, self._arns[queue_url]), LambdaContext(name))
        except Exception:
            logger.exception("event pump: the consumer of %s failed the whole batch", queue_url)
            return len(messages)
        failed = set(_failed(response))
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self._sqs().delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        return len(messages)
