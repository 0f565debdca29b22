"""dispatch_job: push one notification job (a stamp, a completion, a campaign message) to its
participant (the ``push_dispatch`` consumer calls it once per job).

The template is chosen by the job's kind and rendered in the participant's locale; the texts of
stamps and completions were rendered from the campaign's texts when the scan was recorded, those of
campaign messages chosen for the participant's locale when the message was sent. A campaign
message's outcome is counted on the message (``delivered``, ``failed`` or ``no_endpoint``): once per
job, because the consumer runs each job once.

Logs carry ids and outcomes only, never the texts.
"""

from __future__ import annotations

from eventface.domain.model import JobKind, NotificationJob
from eventface.observability import logger
from eventface.services.deps import Deps
from eventface.services.push_messages import recipient, template
from mobile_push import Receipt


def dispatch_job(deps: Deps, job: NotificationJob) -> Receipt | None:
    """Push ``job`` to its participant.

    Parameters
    ----------
    deps
        Uses ``push`` (and ``messages`` for campaign messages).
    job
        The job; ``push_endpoint`` is ``"<platform>:<token>"`` or None when the participant gave none.

    Returns
    -------
    Receipt | None
        The push's receipt (``delivered``, ``failed`` or ``disabled``, with the reason); None when the
        participant has no push endpoint (nothing was sent).
    """
    ids = {
        "job_id": job.job_id,
        "kind": job.kind.value,
        "tenant_id": job.tenant_id,
        "campaign_id": job.campaign_id,
        "participant_id": job.participant_id,
    }
    if not job.push_endpoint:
        logger.info("notification not pushed: the participant has no push endpoint", extra=ids)
        _count(deps, job, "no_endpoint")
        return None
    variables = {
        "text": job.text,
        "title": job.title,
        "campaign_id": job.campaign_id,
        "stamps": str(job.stamps),
        "required": str(job.required),
        "message_id": job.message_id or "",
    }
    addressee = recipient(job.participant_id, job.push_endpoint, job.locale, variables)
    (receipt,) = deps.push.send(template(job.kind.value), [addressee])
    _count(deps, job, "delivered" if receipt.status == "delivered" else "failed")
    if receipt.status == "disabled":
        # A dead endpoint is forgotten, so later jobs do not push to it again (the participant's
        # app registers a fresh token with its next registration).
        forgotten = deps.participants.forget_push_endpoint(
            job.tenant_id, job.campaign_id, job.participant_id, job.push_endpoint
        )
        logger.info("participant push endpoint disabled", extra={**ids, "forgotten": forgotten})
    log = logger.info if receipt.status == "delivered" else logger.warning
    log(
        "notification pushed" if receipt.status == "delivered" else "notification not delivered",
        extra={**ids, "provider": receipt.provider, "status": receipt.status, "reason": receipt.reason},
    )
    return receipt


def _count(deps: Deps, job: NotificationJob, outcome: str) -> None:
    if job.kind is not JobKind.MESSAGE:
        return
    if not job.message_id:
        logger.warning(
            "campaign message job without message_id: its outcome is not counted",
            extra={"job_id": job.job_id, "campaign_id": job.campaign_id},
        )
        return
    deps.messages.count(job.tenant_id, job.campaign_id, job.message_id, outcome)
