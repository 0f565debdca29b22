"""Scan history: a campaign's recognition events, newest first, page by page, filtered."""

from __future__ import annotations

from eventface.domain.cursors import Listing
from eventface.domain.errors import InvalidInputError
from eventface.domain.model import HistoryQuery, Page, RecognitionEvent
from eventface.services.deps import Deps


def list_history(
    deps: Deps,
    tenant_id: str,
    campaign_id: str,
    limit: int = 50,
    cursor: str | None = None,
    *,
    query: HistoryQuery | None = None,
) -> Page[RecognitionEvent]:
    """One page of the events matching ``query``; pass ``page.cursor`` back for the next.
    NotFoundError for an unknown campaign, InvalidInputError for a bad limit, cursor or range."""
    deps.policy.page_limit(limit)
    if query and query.since and query.until and query.since >= query.until:
        raise InvalidInputError("since must be before until")
    wanted = query or HistoryQuery()
    filters = {
        "since": wanted.since,
        "until": wanted.until,
        "device_id": wanted.device_id,
        "checkpoint_id": wanted.checkpoint_id,
        "participant_id": wanted.participant_id,
    }
    listing = Listing(tenant_id, "history", campaign_id, filters)
    position = deps.cursors.open(listing, cursor)
    deps.campaigns.get(tenant_id, campaign_id)
    return deps.cursors.seal(listing, deps.history.list(tenant_id, campaign_id, limit, position, query=query))
