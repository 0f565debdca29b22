"""Queue messages: notification jobs as JSON, and the sender the outbox relay uses.

A scan does not call SQS. It writes each job as an outbox item in the same DynamoDB transaction
as the stamp (so a stamp never exists without its jobs, and the answer does not wait for SQS);
the outbox relay (:mod:`eventface.consumers.outbox_relay`) sends every new item to its queue.

The message id is the job id, stable per fact (a stamp at a checkpoint, a completion): a FIFO
queue deduplicates a relay retry through ``MessageDeduplicationId``, and a consumer deduplicates
on ``job_id`` beyond SQS's five-minute window.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from eventface import aws
from eventface.domain.errors import DependencyError
from eventface.domain.model import JobKind, NotificationJob
from eventface.domain.vip import AlertJob

JOB_FORMAT: Final = 1
#: Notification jobs hold ids and counts only since format 2; a format 1 body (it also carried
#: the rendered text and the push endpoint) is still read, and those fields are ignored.
NOTIFICATION_JOB_FORMAT: Final = 2
_NOTIFICATION_JOB_FORMATS: Final = (1, 2)
#: Logical name of the queue of notification jobs (consumed by ``push_dispatch``).
NOTIFICATIONS: Final = "notifications"
#: Logical name of the queue of VIP alert jobs (consumed by ``vip_enrich``).
SIGHTINGS: Final = "sightings"
ALERT_KIND: Final = "vip_alert"


@dataclass(frozen=True, slots=True)
class QueueMessage:
    """One message for a logical queue (``notifications``...), as the outbox stores it."""

    message_id: str
    queue: str
    body: str
    group_id: str
    kind: str


def job_to_json(job: NotificationJob) -> str:
    """The message body of a job: ids and counts only (never a nickname, a text, a push endpoint,
    a face or a template: the consumer reads what it sends when it sends it)."""
    return json.dumps(
        {
            "format": NOTIFICATION_JOB_FORMAT,
            "job_id": job.job_id,
            "kind": job.kind.value,
            "tenant_id": job.tenant_id,
            "campaign_id": job.campaign_id,
            "participant_id": job.participant_id,
            "checkpoint_id": job.checkpoint_id,
            "stamps": job.stamps,
            "required": job.required,
            "created_at": job.created_at.isoformat(),
            "message_id": job.message_id,
        },
        separators=(",", ":"),
    )


def _document(body: str, what: str, formats: tuple[int, ...] = (JOB_FORMAT,)) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"{what} is not JSON ({exc}): it was not written by this code") from exc
    if not isinstance(document, dict) or document.get("format") not in formats:
        known = " or ".join(str(f) for f in formats)
        raise ValueError(f"{what} has no format {known} document: it was not written by this code")
    return document


def job_from_json(body: str) -> NotificationJob:
    """The job of a notifications message; ValueError if the body is not one."""
    doc = _document(body, "notification job", _NOTIFICATION_JOB_FORMATS)
    try:
        job = NotificationJob(
            job_id=str(doc["job_id"]),
            kind=JobKind(doc["kind"]),
            tenant_id=str(doc["tenant_id"]),
            campaign_id=str(doc["campaign_id"]),
            participant_id=str(doc["participant_id"]),
            checkpoint_id=str(doc["checkpoint_id"]),
            stamps=int(doc["stamps"]),
            required=int(doc["required"]),
            created_at=datetime.fromisoformat(doc["created_at"]),
            message_id=doc["message_id"] if isinstance(doc.get("message_id"), str) else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"notification job is incomplete or malformed ({exc!r})") from exc
    if job.kind is JobKind.MESSAGE and not job.message_id:
        raise ValueError("campaign message job without message_id: it cannot say which message to send")
    return job


def alert_job_to_json(job: AlertJob) -> str:
    """The message body of a VIP alert job (ids only: the consumer reads the alert)."""
    return json.dumps(
        {
            "format": JOB_FORMAT,
            "kind": ALERT_KIND,
            "tenant_id": job.tenant_id,
            "venue_id": job.venue_id,
            "alert_id": job.alert_id,
            "created_at": job.created_at.isoformat(),
        },
        separators=(",", ":"),
    )


def alert_job_from_json(body: str) -> AlertJob:
    """The job of a sightings message; ValueError if the body is not one."""
    doc = _document(body, "alert job")
    try:
        return AlertJob(
            tenant_id=str(doc["tenant_id"]),
            venue_id=str(doc["venue_id"]),
            alert_id=str(doc["alert_id"]),
            created_at=datetime.fromisoformat(doc["created_at"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"alert job is incomplete or malformed ({exc!r})") from exc


def alert_job_message(job: AlertJob) -> QueueMessage:
    """An alert job as a message of the sightings queue (one group per venue: in order)."""
    return QueueMessage(
        message_id=job.alert_id,
        queue=SIGHTINGS,
        body=alert_job_to_json(job),
        group_id=f"{job.tenant_id}#{job.venue_id}"[:128],
        kind=ALERT_KIND,
    )


def job_message(job: NotificationJob) -> QueueMessage:
    """A job as a message of the notifications queue; one group per participant keeps their
    pushes in order ("2 of 3" before "complete")."""
    return QueueMessage(
        message_id=job.job_id,
        queue=NOTIFICATIONS,
        body=job_to_json(job),
        group_id=f"{job.tenant_id}#{job.campaign_id}#{job.participant_id}"[:128],
        kind=job.kind.value,
    )


class SqsSender:
    """Sends messages to their queues; FIFO queues (``.fifo``) get group and deduplication ids.

    Parameters
    ----------
    queue_urls
        Logical queue name -> queue URL.
    sqs_client
        A boto3 SQS client; ``eventface.aws.client("sqs")`` on first use when omitted.
    """

    def __init__(self, queue_urls: Mapping[str, str], *, sqs_client: Any | None = None) -> None:
        self._queue_urls = dict(queue_urls)
        self._client = sqs_client

    def _sqs(self) -> Any:
        if self._client is None:
            self._client = aws.client("sqs")
        return self._client

    def send(self, message: QueueMessage) -> None:
        """Send one message; ValueError for a queue with no URL, DependencyError if SQS refuses."""
        url = self._queue_urls.get(message.queue)
        if not url:
            raise ValueError(
                f"no URL for queue {message.queue!r}: configure it (known: {sorted(self._queue_urls)})"
            )
        kwargs: dict[str, Any] = {
            "QueueUrl": url,
            "MessageBody": message.body,
            "MessageAttributes": {
                "kind": {"DataType": "String", "StringValue": message.kind},
                "job_id": {"DataType": "String", "StringValue": message.message_id},
            },
        }
        if url.endswith(".fifo"):
            kwargs["MessageGroupId"] = message.group_id
            kwargs["MessageDeduplicationId"] = message.message_id
        try:
            self._sqs().send_message(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise DependencyError(
                f"sending to queue {message.queue} failed in SQS ({code}): retry later"
            ) from exc
        except BotoCoreError as exc:
            raise DependencyError(
                f"sending to queue {message.queue} failed ({type(exc).__name__}): retry later"
            ) from exc
