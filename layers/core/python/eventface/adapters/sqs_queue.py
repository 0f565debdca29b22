"""SqsNotificationQueue: notification jobs as JSON messages on SQS.

The job id is stable per fact (a stamp at a checkpoint, a completion), so a FIFO queue
deduplicates retries through ``MessageDeduplicationId``, and a standard queue's consumer can
deduplicate on it (Powertools idempotency keyed on ``job_id``).
"""

from __future__ import annotations

import json
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from eventface import aws
from eventface.domain.errors import DependencyError
from eventface.domain.model import NotificationJob

JOB_FORMAT: Final = 1


def job_to_json(job: NotificationJob) -> str:
    """The message body of a job (ids, counts and the rendered text; never a face or template)."""
    return json.dumps(
        {
            "format": JOB_FORMAT,
            "job_id": job.job_id,
            "kind": job.kind.value,
            "tenant_id": job.tenant_id,
            "campaign_id": job.campaign_id,
            "participant_id": job.participant_id,
            "checkpoint_id": job.checkpoint_id,
            "stamps": job.stamps,
            "required": job.required,
            "text": job.text,
            "push_endpoint": job.push_endpoint,
            "created_at": job.created_at.isoformat(),
        },
        separators=(",", ":"),
    )


class SqsNotificationQueue:
    """Puts jobs on one queue; FIFO queues (``.fifo``) get group and deduplication ids.

    Parameters
    ----------
    queue_url
        The queue.
    sqs_client
        A boto3 SQS client; ``eventface.aws.client("sqs")`` on first use when omitted.
    """

    def __init__(self, queue_url: str, *, sqs_client: Any | None = None) -> None:
        if not queue_url:
            raise ValueError("queue_url must be the URL of an SQS queue")
        self._queue_url = queue_url
        self._client = sqs_client
        self._fifo = queue_url.endswith(".fifo")

    def _sqs(self) -> Any:
        if self._client is None:
            self._client = aws.client("sqs")
        return self._client

    def put(self, job: NotificationJob) -> None:
        """Send one job; DependencyError if SQS refuses it."""
        kwargs: dict[str, Any] = {
            "QueueUrl": self._queue_url,
            "MessageBody": job_to_json(job),
            "MessageAttributes": {
                "kind": {"DataType": "String", "StringValue": job.kind.value},
                "job_id": {"DataType": "String", "StringValue": job.job_id},
            },
        }
        if self._fifo:
            # One group per participant keeps their pushes in order ("2 of 3" before "complete").
            kwargs["MessageGroupId"] = f"{job.tenant_id}#{job.campaign_id}#{job.participant_id}"[:128]
            kwargs["MessageDeduplicationId"] = job.job_id
        try:
            self._sqs().send_message(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise DependencyError(f"queueing the notification failed in SQS ({code}): retry later") from exc
        except BotoCoreError as exc:
            raise DependencyError(
                f"queueing the notification failed ({type(exc).__name__}): retry later"
            ) from exc
