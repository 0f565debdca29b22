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

from typing import Any

from eventface.adapters.sqs_queue import job_from_json
from eventface.consumers.fifo import process_once
from eventface.domain.model import NotificationJob
from eventface.services.deps import Deps
from eventface.services.notifications import dispatch_job
from eventface.settings import Settings

#: The job field whose value names one push (Powertools hashes it into the idempotency key).
IDEMPOTENCY_KEY = "job_id"


def _push_once(deps: Deps, job: NotificationJob) -> dict[str, Any] | None:
    """The dispatch whose result Powertools stores (JSON) under the job's idempotency key."""
    receipt = dispatch_job(deps, job)
    if receipt is None:
        return None
    return {"status": receipt.status, "provider": receipt.provider, "reason": receipt.reason}


def dispatch(
    event: dict[str, Any], context: Any, deps: Deps | None = None, settings: Settings | None = None
) -> dict[str, Any]:
    """Run the batch's jobs, each once; Powertools' partial batch response (see :mod:`.fifo`)."""
    return process_once(
        event,
        context,
        parse=job_from_json,
        work=_push_once,
        key=IDEMPOTENCY_KEY,
        what="notification job",
        deps=deps,
        settings=settings,
    )


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point (SQS FIFO queue ``notifications``, ReportBatchItemFailures)."""
    return dispatch(event, context)
