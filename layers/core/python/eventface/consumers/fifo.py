"""What both queue consumers share: an SQS FIFO batch, each job run once.

Records are processed by Powertools' :class:`SqsFifoPartialProcessor` with ``skip_group_on_error``:
a failed record fails the records after it *in its message group* (a participant's pushes, a
venue's alerts stay in order) while other groups go on; the failed ones come back after the
visibility timeout and, after ``maxReceiveCount``, go to the dead-letter queue. A malformed body
is such a failure, logged with the message id.

Each job runs under Powertools idempotency keyed on one of its fields (table
``<prefix>-idempotency``), so a redelivered job (a retried batch, a relay retry past SQS's
five-minute deduplication window) returns the stored result instead of running again, for
``idempotency_ttl_hours``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from eventface import aws
from eventface.bootstrap import Container, services
from eventface.observability import logger
from eventface.services.deps import Deps
from eventface.settings import Settings, get_settings

J = TypeVar("J")


@functools.lru_cache(maxsize=8)
def _idempotency(
    table: str, key: str, ttl_seconds: int, client: Any
) -> tuple[DynamoDBPersistenceLayer, IdempotencyConfig]:
    # A persistence layer binds itself to the first config it is used with: one pair per consumer.
    config = IdempotencyConfig(
        event_key_jmespath=key, raise_on_no_idempotency_key=True, expires_after_seconds=ttl_seconds
    )
    return DynamoDBPersistenceLayer(table_name=table, boto3_client=client), config


def process_once(
    event: dict[str, Any],
    context: Any,
    *,
    parse: Callable[[str], J],
    work: Callable[[Deps, J], dict[str, Any] | None],
    key: str,
    what: str,
    deps: Deps | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Run ``work`` on each record's job (``parse(body)``), once per value of its field ``key``.

    Parameters
    ----------
    event, context
        The Lambda SQS event and context (the context bounds the idempotency records' in-progress time).
    parse, work
        The job from a message body (ValueError if malformed), and the use case; ``work``'s result
        is stored (JSON) under the job's idempotency key.
    key, what
        The job's identifying field; what a job is called in log lines ("notification job").
    deps, settings
        The ports and the settings (table prefix, TTL); the process's services by default.

    Returns
    -------
    dict
        Powertools' partial batch response (``batchItemFailures``).
    """
    if deps is None:
        deps = services().deps
    if settings is None:
        settings = deps.settings if isinstance(deps, Container) else get_settings()
    persistence, config = _idempotency(
        f"{settings.table_prefix}-idempotency",
        key,
        settings.idempotency_ttl_hours * 3600,
        aws.client("dynamodb"),
    )
    config.register_lambda_context(context)

    def run(deps: Deps, *, job: J) -> dict[str, Any] | None:
        return work(deps, job)

    once = idempotent_function(run, data_keyword_argument="job", persistence_store=persistence, config=config)

    def record_handler(record: SQSRecord) -> None:
        try:
            job = parse(record.body)
        except ValueError as exc:
            logger.error(
                f"malformed {what}: reported as a batch item failure (the queue retries it, then moves "
                "it to its dead-letter queue); fix or delete the message",
                extra={"message_id": record.message_id, "error": str(exc)},
            )
            raise
        once(deps, job=job)

    processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    # Report every record, even when all fail: the same retry for Lambda, and one clear response.
    processor.raise_on_entire_batch_failure = False
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    )
