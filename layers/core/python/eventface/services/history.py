"""Scan history: a campaign's recognition events, newest first, page by page."""

from __future__ import annotations

from eventface.domain.errors import InvalidInputError
from eventface.domain.model import Page, RecognitionEvent
from eventface.services.deps import Deps


def list_history(
    deps: Deps, tenant_id: str, campaign_id: str, limit: int = 50, cursor: str | None = None
) -> Page[RecognitionEvent]:
    """One page of events; pass ``page.cursor`` back for the next. NotFoundError for an unknown
    campaign, InvalidInputError for a bad limit or cursor."""
    if not 1 <= limit <= deps.policy.max_page:
        raise InvalidInputError(f"limit must be between 1 and {deps.policy.max_page}")
    deps.campaigns.get(tenant_id, campaign_id)
    return deps.history.list(tenant_id, campaign_id, limit, cursor)
