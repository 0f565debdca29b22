"""The outbox relay on the moto server: outbox stream records become queue messages, once."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from eventface import aws
from eventface.adapters.dynamo_models import OutboxItem, create_tables
from eventface.adapters.sqs_queue import NOTIFICATIONS, SqsSender
from eventface.consumers import outbox_relay
from eventface.local.apps import FUNCTIONS_DIR, load_app
from eventface.local.pump import EventPump
from eventface.local.resources import QueueSpec, create_queue, stream_arns

NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def _put(message_id: str, **changes: Any) -> None:
    fields: dict[str, Any] = {
        "queue": NOTIFICATIONS,
        "body": json.dumps({"job_id": message_id}),
        "group_id": "acme#rally#p1",
        "kind": "stamp",
        "created_at": NOW,
        "expires": NOW + timedelta(days=1),
        **changes,
    }
    OutboxItem(message_id, **fields).save()


def _bodies(queue_url: str) -> list[str]:
    sqs = aws.client("sqs")
    out: list[str] = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60)
        if not got.get("Messages"):
            return out
        out += [m["Body"] for m in got["Messages"]]


def test_relay_sends_new_outbox_items_once_and_retries_from_a_failure(moto_endpoint: str) -> None:
    # given: an outbox with a stream, a FIFO queue, and three items, one of which cannot be sent
    prefix = f"r{uuid.uuid4().hex[:10]}"
    create_tables(prefix, wait=False)
    queue_url, _ = create_queue(QueueSpec(f"jobs{uuid.uuid4().hex[:6]}"), prefix)
    arn = stream_arns(prefix)["outbox"]
    _put("job-1")
    _put("job-2", queue="nowhere")  # a queue without a URL: the relay must report it
    _put("job-3")
    sender = SqsSender({NOTIFICATIONS: queue_url})
    responses: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        response = outbox_relay.relay(event, context, sender=sender)
        responses.append(response)
        return response

    pump = EventPump({})
    # when: one pass, then the failed record is fixed and the pump reads again from it
    assert pump.poll_stream_once(arn, handler) == 3
    OutboxItem("job-2").delete()  # a REMOVE record: ignored by the relay
    # then: the failure was reported by sequence number; the others went to the queue
    failures = responses[0]["batchItemFailures"]
    assert len(failures) == 1 and failures[0]["itemIdentifier"].isdigit()
    # when: the pump reads again from the failed record (job-2 fails again, job-3 repeats)
    pump.poll_stream_once(arn, handler)
    # then: FIFO deduplication keeps one message per job; the removal sent nothing
    bodies = sorted(json.loads(b)["job_id"] for b in _bodies(queue_url))
    assert bodies == ["job-1", "job-3"]


def test_relay_ignores_modifications_and_removals() -> None:
    # given
    record = {
        "eventID": "1",
        "eventName": "REMOVE",
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "Keys": {"message_id": {"S": "x"}},
            "SequenceNumber": "1",
            "StreamViewType": "NEW_IMAGE",
        },
    }
    sent: list[Any] = []

    class Recorder(SqsSender):
        def send(self, message: Any) -> None:
            sent.append(message)

    # when
    response = outbox_relay.relay({"Records": [record]}, None, sender=Recorder({}))
    # then
    assert response == {"batchItemFailures": []} and sent == []


def test_the_lambda_entry_point_is_the_relay() -> None:
    # when
    module = load_app(FUNCTIONS_DIR / "outbox_relay", "eventface_outbox_relay_handler", "handler.py")
    # then
    assert module.lambda_handler is outbox_relay.lambda_handler
