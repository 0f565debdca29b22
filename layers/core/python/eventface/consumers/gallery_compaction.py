"""gallery_compaction: the scheduled erasure sweep of the galleries.

Lambda runs it on a schedule (``functions/gallery_compaction/handler.py``, an EventBridge rule
every ``EVENTFACE_GALLERY_SWEEP_MINUTES``; the function's timeout must not exceed that period);
the local event pump runs the same handler on a timer. Each run compacts the galleries that have
erased people waiting (their templates leave the stored objects) and deletes the objects retired
longer than ``EVENTFACE_GALLERY_RETIRED_GRACE_SECONDS`` ago, every version of them: see
:func:`eventface.services.galleries.sweep_gallery_erasures`. Runs are idempotent, and concurrent
runs are safe (every manifest change is a compare-and-swap), so a retried or overlapping run
does no harm. A run in which some gallery failed raises after sweeping the others, so the
invocation is reported as failed (and retried) while the failed galleries wait for the next run.
"""

from __future__ import annotations

from typing import Any

from eventface.bootstrap import services
from eventface.observability import logger
from eventface.services.deps import Deps
from eventface.services.galleries import sweep_gallery_erasures


def sweep(event: dict[str, Any], context: Any, deps: Deps | None = None) -> dict[str, Any]:
    """Run one erasure sweep; its counts (ids and counts only are logged)."""
    report = sweep_gallery_erasures(deps if deps is not None else services().deps)
    counts = {
        "galleries": report.galleries,
        "compacted": report.compacted,
        "purged": report.purged,
        "pending": report.pending,
    }
    logger.info("gallery erasure sweep", extra=counts)
    return counts


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point (EventBridge schedule)."""
    return sweep(event, context)
