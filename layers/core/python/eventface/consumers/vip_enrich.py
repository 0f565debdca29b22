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

from typing import Any

from eventface.adapters.sqs_queue import alert_job_from_json
from eventface.consumers.fifo import process_once
from eventface.domain.vip import AlertJob
from eventface.services.alerts import enrich_alert
from eventface.services.deps import Deps
from eventface.settings import Settings

#: The job field whose value names one enrichment (Powertools hashes it into the idempotency key).
IDEMPOTENCY_KEY = "alert_id"


def _enrich_once(deps: Deps, job: AlertJob) -> dict[str, Any]:
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
    """Run the batch's jobs, each once; Powertools' partial batch response (see :mod:`.fifo`)."""
    return process_once(
        event,
        context,
        parse=alert_job_from_json,
        work=_enrich_once,
        key=IDEMPOTENCY_KEY,
        what="alert job",
        deps=deps,
        settings=settings,
    )


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point (SQS FIFO queue ``sightings``, ReportBatchItemFailures)."""
    return enrich(event, context)
