"""vip_enrich: enriches and pushes the VIP alerts whose jobs arrive on the ``sightings`` FIFO queue.

Lambda runs it on the queue (``functions/vip_enrich/handler.py``, ReportBatchItemFailures); the
local event pump calls the same handler. Each record is an alert job written by
:func:`eventface.adapters.sqs_queue.alert_job_to_json`; :func:`eventface.services.alerts.enrich_alert`
asks the venue's CRM (within the venue's deadline) and pushes the alert to the staff devices.

One enrichment and one push per alert, although SQS delivers at least once: the work runs under
Powertools idempotency keyed on the alert id (table ``<prefix>-idempotency``), and the service
itself skips an alert that was already pushed.

FIFO order: :class:`SqsFifoPartialProcessor` with ``skip_group_on_error``: a failed record fails the
records after it in its message group (one group per venue) and lets other venues' alerts go on.
A malformed body is such a failure, logged with the message id; after ``maxReceiveCount`` it goes
to the dead-letter queue.
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
from eventface.adapters.sqs_queue import alert_job_from_json
from eventface.bootstrap import Container, services
from eventface.domain.vip import AlertJob
from eventface.observability import logger
from eventface.services.alerts import enrich_alert
from eventface.services.deps import Deps
from eventface.settings import Settings, get_settings

#: The job field whose value names one enrichment (Powertools hashes it into the idempotency key).
IDEMPOTENCY_KEY = "alert_id"


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


def _enrich_once(deps: Deps, *, job: AlertJob) -> dict[str, Any]:
    """The enrichment whose result Powertools stores (JSON) under the alert's idempotency key."""
    alert = enrich_alert(deps, job)
    return {
        "alert_id": alert.alert_id,
        "profile_status": alert.profile_status.value,
        "delivered": alert.delivered,
        "failed": alert.failed,
    }


def enrich(
    event: dict[str, Any], context: Any, deps: Deps | None = None, settings: Settings | None = None
) -> dict[str, Any]:
    """Enrich and push the batch's alerts, each once; Powertools' partial batch response.

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
    enrich_once = idempotent_function(
        _enrich_once, data_keyword_argument="job", persistence_store=persistence, config=config
    )

    def record_handler(record: SQSRecord) -> None:
        try:
            job = alert_job_from_json(record.body)
        except ValueError as exc:
            logger.error(
                "malformed alert job: reported as a batch item failure (the queue retries it, then "
                "moves it to its dead-letter queue); fix or delete the message",
                extra={"message_id": record.message_id, "error": str(exc)},
            )
            raise
        enrich_once(deps, job=job)

    processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    # Report every record, even when all fail: the same retry for Lambda, and one clear response.
    processor.raise_on_entire_batch_failure = False
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    )


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point (SQS FIFO queue ``sightings``, ReportBatchItemFailures)."""
    return enrich(event, context)
