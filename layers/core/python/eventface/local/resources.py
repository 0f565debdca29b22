"""The AWS resources of the local stack, created on its moto server from the code's own definitions.

- Tables: :func:`eventface.adapters.dynamo_models.create_tables` (the pynamodb models are the one
  schema source), and the ARNs of their streams (the outbox's feeds the outbox relay).
- The gallery bucket: the bucket :class:`~eventface.adapters.s3_gallery.S3GalleryStore` writes to.
- The sightings queue (VIP alert jobs for ``vip_enrich``; FIFO, one group per venue) and the
  notification queue: FIFO, because :class:`~eventface.adapters.sqs_queue.SqsNotificationQueue`
  gives FIFO queues one message group per participant ("2 of 3" is pushed before "complete") and
  deduplicates on the job id; failed deliveries go to a dead-letter queue after
  :data:`MAX_RECEIVE_COUNT` receives.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from eventface import aws
from eventface.adapters.dynamo_models import MODELS, create_tables, table_name

#: Receives before SQS moves a message to the dead-letter queue (a consumer retries that often).
MAX_RECEIVE_COUNT: Final = 5
#: Long enough for a consumer to finish a batch; a failed message is retried after it.
VISIBILITY_TIMEOUT_SECONDS: Final = 30
#: Dead letters are kept for the maximum SQS allows (14 days), for inspection and redrive.
DLQ_RETENTION_SECONDS: Final = 14 * 24 * 3600


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A queue and its dead-letter queue."""

    name: str
    fifo: bool = True

    @property
    def queue_name(self) -> str:
        return f"{self.name}.fifo" if self.fifo else self.name

    @property
    def dlq_name(self) -> str:
        return f"{self.name}-dlq.fifo" if self.fifo else f"{self.name}-dlq"


@dataclass(frozen=True, slots=True)
class Resources:
    """What :func:`create_resources` made."""

    table_prefix: str
    tables: tuple[str, ...]
    gallery_bucket: str
    queue_urls: dict[str, str]
    dlq_urls: dict[str, str]
    stream_arns: dict[str, str]


#: Logical queue name -> spec. Consumers are registered by the logical name (see eventface.local.pump).
QUEUES: Final = {"notifications": QueueSpec("notifications"), "sightings": QueueSpec("sightings")}


def create_queue(spec: QueueSpec, prefix: str, sqs: Any | None = None) -> tuple[str, str]:
    """Create ``spec``'s dead-letter queue, then the queue redriving to it; their URLs."""
    client = sqs or aws.client("sqs")
    fifo_attributes = {"FifoQueue": "true"} if spec.fifo else {}
    dlq_url = client.create_queue(
        QueueName=f"{prefix}-{spec.dlq_name}",
        Attributes={**fifo_attributes, "MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)},
    )["QueueUrl"]
    dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = client.create_queue(
        QueueName=f"{prefix}-{spec.queue_name}",
        Attributes={
            **fifo_attributes,
            "VisibilityTimeout": str(VISIBILITY_TIMEOUT_SECONDS),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
            ),
        },
    )["QueueUrl"]
    return queue_url, dlq_url


def create_resources(prefix: str) -> Resources:
    """Create every table, the gallery bucket and the queues of ``prefix`` on the current endpoint."""
    tables = tuple(create_tables(prefix, wait=False))  # moto's tables are ACTIVE at once
    bucket = f"{prefix}-galleries"
    aws.client("s3").create_bucket(Bucket=bucket)
    queue_urls: dict[str, str] = {}
    dlq_urls: dict[str, str] = {}
    for logical, spec in QUEUES.items():
        queue_urls[logical], dlq_urls[logical] = create_queue(spec, prefix)
    return Resources(prefix, tables, bucket, queue_urls, dlq_urls, stream_arns(prefix))


def stream_arns(prefix: str) -> dict[str, str]:
    """Logical table name -> stream ARN, for the tables of ``prefix`` that have a stream."""
    dynamodb = aws.client("dynamodb")
    arns = {}
    for table, model in MODELS.items():
        if getattr(model.Meta, "stream_view_type", None):
            description = dynamodb.describe_table(TableName=table_name(prefix, table))["Table"]
            arns[table] = description["LatestStreamArn"]
    return arns
