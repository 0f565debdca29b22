"""The local event pump against moto's SQS: consumers get Lambda-shaped batches, failures stay."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import pytest

from eventface import aws
from eventface.local.pump import EventPump, load_handler
from eventface.local.resources import MAX_RECEIVE_COUNT, QueueSpec, create_queue


def _counts(queue_url: str) -> tuple[int, int]:
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_create_queue_redrives_to_its_dead_letter_queue(moto_endpoint: str) -> None:
    # when
    queue_url, dlq_url = create_queue(QueueSpec(f"q{uuid.uuid4().hex[:8]}"), "test")
    # then
    attributes = aws.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])
    policy = json.loads(attributes["Attributes"]["RedrivePolicy"])
    dlq_arn = aws.client("sqs").get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
    assert policy == {"deadLetterTargetArn": dlq_arn["Attributes"]["QueueArn"], "maxReceiveCount": 5}
    assert MAX_RECEIVE_COUNT == 5
    assert queue_url.endswith(".fifo")


def test_event_pump_deletes_processed_messages_and_keeps_failed_ones(moto_endpoint: str) -> None:
    # given: a queue with two messages and a consumer that fails the second
    queue_url, _ = create_queue(QueueSpec(f"q{uuid.uuid4().hex[:8]}", fifo=False), "test")
    for body in ("ok", "fail"):
        aws.client("sqs").send_message(
            QueueUrl=queue_url,
            MessageBody=body,
            MessageAttributes={"kind": {"DataType": "String", "StringValue": "stamp"}},
        )
    seen: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.extend(event["Records"])
        failed = [r["messageId"] for r in event["Records"] if r["body"] == "fail"]
        return {"batchItemFailures": [{"itemIdentifier": m} for m in failed]}

    pump = EventPump({queue_url: handler})
    # when
    received = 0
    while received < 2:
        got = pump.poll_once(queue_url, handler)
        assert got, "the pump received nothing"
        received += got
    # then: Lambda-shaped records, the processed one deleted, the failed one in flight for a retry
    assert sorted(r["body"] for r in seen) == ["fail", "ok"]
    assert all(r["eventSource"] == "aws:sqs" and r["eventSourceARN"].startswith("arn:aws:sqs") for r in seen)
    assert seen[0]["messageAttributes"]["kind"]["stringValue"] == "stamp"
    assert _counts(queue_url) == (0, 1)


def test_load_handler_imports_module_and_function() -> None:
    # when: a handler named as a consumer registry entry is
    handler = load_handler("operator:getitem")
    # then: it is that function
    assert handler({"Records": []}, "Records") == []


@pytest.mark.parametrize("reference", ["operator", "operator:", ":getitem"])
def test_load_handler_refuses_references_without_module_and_function(reference: str) -> None:
    with pytest.raises(ValueError, match="module:function"):
        load_handler(reference)


def test_event_pump_runs_a_scheduled_consumer_every_period_with_a_scheduled_event() -> None:
    # given: a schedule whose consumer fails on its first run
    runs: list[dict[str, Any]] = []
    twice = threading.Event()

    def consumer(event: dict[str, Any], context: Any) -> None:
        runs.append(event)
        if len(runs) == 2:
            twice.set()
        if len(runs) == 1:
            raise RuntimeError("first run fails")

    pump = EventPump({}, schedules={"gallery_compaction": (0.01, consumer)})
    # when
    pump.start()
    try:
        assert twice.wait(timeout=10), "the scheduled consumer did not run twice"
    finally:
        pump.stop()
    # then: a failure does not stop the schedule; each run gets EventBridge's scheduled event
    assert runs[0]["detail-type"] == "Scheduled Event" and runs[0]["source"] == "aws.events"
    assert runs[0]["resources"][0].endswith(":rule/gallery_compaction")


def test_scheduled_consumers_load() -> None:
    from eventface.local.pump import SCHEDULED_CONSUMERS

    assert {name: callable(load_handler(ref)) for name, ref in SCHEDULED_CONSUMERS.items()} == {
        "gallery_compaction": True
    }
