"""Gallery upkeep: the erasure sweep that makes erasures physical within the stated bound."""

from __future__ import annotations

from eventface.domain.errors import DependencyError
from eventface.domain.model import GallerySweep
from eventface.services.deps import Deps


def sweep_gallery_erasures(deps: Deps) -> GallerySweep:
    """Compact every gallery with erased people waiting and delete the objects retired more than
    ``policy.gallery_retired_grace`` ago (the ``gallery_compaction`` consumer runs this every
    ``policy.gallery_sweep_period``; erasure receipts promise ``template_purge_deadline``).

    Raises
    ------
    DependencyError
        Listing the pending erasures failed, or some galleries failed (the others were swept;
        the failed ones are named, and the next sweep retries them).
    """
    report = deps.gallery.sweep_erasures(deps.policy.gallery_retired_grace)
    if report.failed:
        raise DependencyError(
            f"the erasure sweep failed for {len(report.failed)} of {report.galleries} galleries "
            f"({'; '.join(report.failed)}); the next sweep retries them"
        )
    return report
