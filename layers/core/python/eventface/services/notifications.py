"""dispatch_job: push one notification job (a stamp, a completion, a campaign message) to its
participant (the ``push_dispatch`` consumer calls it once per job).

A job holds ids and counts only; what the push says and where it goes is read when it is sent:
the participant (nickname, locale, push endpoint), the campaign's texts (stamps and completions,
rendered with the job's counts) or the campaign message (its text in the participant's locale).
A participant erased since the job was queued gets nothing. A campaign message's outcome is
counted on the message (``delivered``, ``failed`` or ``no_endpoint``, which includes erased
participants): once per job, because the consumer runs each job once.

Logs carry ids and outcomes only, never the texts.
"""

from __future__ import annotations

from eventface.domain.model import JobKind, NotificationJob, Participant
from eventface.observability import logger
from eventface.services.deps import Deps
from eventface.services.push_messages import recipient, template
from mobile_push import Receipt


def dispatch_job(deps: Deps, job: NotificationJob) -> Receipt | None:
    """Push ``job`` to its participant.

    Parameters
    ----------
    deps
        Uses ``participants``, ``campaigns``, ``push`` (and ``messages`` for campaign messages).
    job
        The job.

    Returns
    -------
    Receipt | None
        The push's receipt (``delivered``, ``failed`` or ``disabled``, with the reason); None when
        nothing was sent: the participant was erased or has no push endpoint.
    """
    ids = {
        "job_id": job.job_id,
        "kind": job.kind.value,
        "tenant_id": job.tenant_id,
        "campaign_id": job.campaign_id,
        "participant_id": job.participant_id,
    }
    participant = deps.participants.find(job.tenant_id, job.campaign_id, job.participant_id)
    if participant is None:
        logger.info("notification not pushed: the participant was erased", extra=ids)
        _count(deps, job, "no_endpoint")
        return None
    endpoint = participant.push_endpoint
    if not endpoint:
        logger.info("notification not pushed: the participant has no push endpoint", extra=ids)
        _count(deps, job, "no_endpoint")
        return None
    title, text = _texts(deps, job, participant)
    variables = {
        "text": text,
        "title": title,
        "campaign_id": job.campaign_id,
        "stamps": str(job.stamps),
        "required": str(job.required),
        "message_id": job.message_id or "",
    }
    addressee = recipient(job.participant_id, endpoint, participant.locale, variables)
    (receipt,) = deps.push.send(template(job.kind.value), [addressee])
    _count(deps, job, "delivered" if receipt.status == "delivered" else "failed")
    if receipt.status == "disabled":
        # A dead endpoint is forgotten, so later jobs do not push to it again (the participant's
        # app registers a fresh token with its next registration).
        forgotten = deps.participants.forget_push_endpoint(
            job.tenant_id, job.campaign_id, job.participant_id, endpoint
        )
        logger.info("participant push endpoint disabled", extra={**ids, "forgotten": forgotten})
    log = logger.info if receipt.status == "delivered" else logger.warning
    log(
        "notification pushed" if receipt.status == "delivered" else "notification not delivered",
        extra={**ids, "provider": receipt.provider, "status": receipt.status, "reason": receipt.reason},
    )
    return receipt


def _texts(deps: Deps, job: NotificationJob, participant: Participant) -> tuple[str, str]:
    """(title, text) of the push: the message in the participant's locale, or the campaign's
    stamp or completion text rendered for the participant with the job's counts (the template
    gives those a localised title)."""
    if job.kind is JobKind.MESSAGE:
        if not job.message_id:
            raise ValueError(f"campaign message job {job.job_id} has no message_id: nothing to send")
        message = deps.messages.get(job.tenant_id, job.campaign_id, job.message_id)
        return message.text_for(participant.locale)
    campaign = deps.campaigns.get(job.tenant_id, job.campaign_id)
    text = campaign.texts.render(
        job.kind,
        nickname=participant.nickname,
        stamps=job.stamps,
        required=job.required,
        reward=campaign.reward_text,
    )
    return "", text


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
