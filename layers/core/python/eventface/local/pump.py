"""The local event pump: what Lambda's SQS event source mapping does, on a thread.

It long-polls each queue that has a registered consumer, hands the messages to the consumer as a
Lambda SQS event (``{"Records": [...]}``) and deletes the ones that did not fail. A consumer
returns Powertools' partial batch response (``{"batchItemFailures": [{"itemIdentifier": id}]}``):
failed messages stay on the queue, come back after the visibility timeout and, after the
queue's ``maxReceiveCount``, move to its dead-letter queue. A consumer that raises fails the
whole batch, as on Lambda.

Consumers are registered by logical queue name (``notifications``...) in :data:`CONSUMERS` as
``"module:function"`` (the function's Lambda entry point, ``lambda_handler``), so the stack
imports them only when it starts. A queue with no consumer is not polled: its messages stay there
(and the demo reads them).
"""

from __future__ import annotations

import importlib
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from eventface import aws

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]

#: Logical queue name -> "module:function" of its consumer. None yet: the push sender plugs in
#: here (e.g. ``"notifications": "push_dispatch.app:lambda_handler"``).
CONSUMERS: Final[dict[str, str]] = {}
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


class EventPump:
    """Polls queues on one thread and invokes their consumers (see the module docstring).

    Parameters
    ----------
    consumers
        Queue URL -> handler (``lambda_handler(event, context)``).
    sqs_client
        Defaults to ``eventface.aws.client("sqs")``.
    """

    def __init__(self, consumers: Mapping[str, Handler], *, sqs_client: Any | None = None) -> None:
        self._consumers = dict(consumers)
        self._client = sqs_client
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._arns: dict[str, str] = {}

    def _sqs(self) -> Any:
        if self._client is None:
            self._client = aws.client("sqs")
        return self._client

    def start(self) -> None:
        """Start polling (a no-op thread-wise when nothing is registered)."""
        if not self._consumers:
            return
        self._thread = threading.Thread(target=self._run, name="event-pump", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current poll (at most WAIT_SECONDS plus the batch in hand)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=WAIT_SECONDS + 30)

    def _run(self) -> None:
        while not self._stop.is_set():
            for queue_url, handler in self._consumers.items():
                try:
                    self.poll_once(queue_url, handler)
                except Exception:
                    # Like an event source mapping: log, back off, keep polling.
                    logger.exception("event pump: polling %s failed", queue_url)
                    self._stop.wait(WAIT_SECONDS)

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
        failed = {
            item.get("itemIdentifier")
            for item in (response or {}).get("batchItemFailures", [])
            if isinstance(item, dict)
        }
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self._sqs().delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        return len(messages)
