"""push_dispatch: pushes the notification jobs of the ``notifications`` FIFO queue to participants.

Lambda runs it on the queue (``functions/push_dispatch/handler.py``, ReportBatchItemFailures); the
local event pump calls the same handler. Each record is a job written by
:func:`eventface.adapters.sqs_queue.job_to_json`; :func:`eventface.services.notifications.dispatch_job`
sends it.

Exactly one push per job, although SQS delivers at least once: the dispatch runs under Powertools
idempotency keyed on the job id (table ``<prefix>-idempotency``), so a redelivered job (a retried
batch, a relay retry past SQS's five-minute deduplication window) returns the stored receipt instead
of pushing again, for ``idempotency_ttl_hours``.

FIFO order: records are processed by :class:`SqsFifoPartialProcessor` with ``skip_group_on_error``.
A failed record fails the records after it *in its message group* (one group per participant, so
"2 of 3" is never pushed after "complete" is retried), while other participants' jobs go on. The
failed ones come back after the visibility timeout and, after ``maxReceiveCount``, go to the
dead-letter queue. A malformed body is such a failure, logged with the message id.
"""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from eventface import aws
from eventface.adapters.sqs_queue import job_from_json
from eventface.bootstrap import Container, services
from eventface.domain.model import NotificationJob
from eventface.observability import logger
from eventface.services.deps import Deps
from eventface.services.notifications import dispatch_job
from eventface.settings import Settings, get_settings

#: The job field whose value names one push (Powertools hashes it into the idempotency key).
IDEMPOTENCY_KEY = "job_id"


@functools.lru_cache(maxsize=4)
def _idempotency(
    table: str, ttl_seconds: int, client: Any
) -> tuple[DynamoDBPersistenceLayer, IdempotencyConfig]:
    # A persistence layer binds itself to the first config it is used with: one pair per consumer.
    config = IdempotencyConfig(
        event_key_jmespath=IDEMPOTENCY_KEY,
        raise_on_no_idempotency_key=True,
        expires_after_seconds=ttl_seconds,
    )
    return DynamoDBPersistenceLayer(table_name=table, boto3_client=client), config


def _push_once(deps: Deps, *, job: NotificationJob) -> dict[str, Any] | None:
    """The dispatch whose result Powertools stores (JSON) under the job's idempotency key."""
    receipt = dispatch_job(deps, job)
    if receipt is None:
        return None
    return {"status": receipt.status, "provider": receipt.provider, "reason": receipt.reason}


def dispatch(
    event: dict[str, Any], context: Any, deps: Deps | None = None, settings: Settings | None = None
) -> dict[str, Any]:
    """Push the batch's jobs, each once; Powertools' partial batch response.

    Parameters
    ----------
    event, context
        The Lambda SQS event and context (the context bounds the idempotency records' in-progress time).
    deps
        The ports; the process's services by default (tests pass their own).
    settings
        The table prefix and idempotency TTL; the container's settings by default.
    """
    if deps is None:
        deps = services().deps
    if settings is None:
        settings = deps.settings if isinstance(deps, Container) else get_settings()
    persistence, config = _idempotency(
        f"{settings.table_prefix}-idempotency", settings.idempotency_ttl_hours * 3600, aws.client("dynamodb")
    )
    config.register_lambda_context(context)
    push_once = idempotent_function(
        _push_once, data_keyword_argument="job", persistence_store=persistence, config=config
    )

    def record_handler(record: SQSRecord) -> None:
        try:
            job = job_from_json(record.body)
        except ValueError as exc:
            logger.error(
                "malformed notification job: reported as a batch item failure (the queue retries it, "
                "then moves it to its dead-letter queue); fix or delete the message",
                extra={"message_id": record.message_id, "error": str(exc)},
            )
            raise
        push_once(deps, job=job)

    processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    # Report every record, even when all fail: the same retry for Lambda, and one clear response.
    processor.raise_on_entire_batch_failure = False
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    )


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point (SQS FIFO queue ``notifications``, ReportBatchItemFailures)."""
    return dispatch(event, context)
