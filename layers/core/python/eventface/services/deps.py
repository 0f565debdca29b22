"""What the services work with: the ports and a few policy values, given by the composition root."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from eventface.domain.cursors import CursorSeal
from eventface.domain.errors import InvalidInputError
from eventface.domain.model import DEFAULT_COOLDOWN_SECONDS, DEFAULT_HISTORY_TTL
from eventface.domain.probe_guard import ProbeGuardPolicy
from eventface.ports import (
    CampaignRepository,
    Clock,
    DeviceRegistry,
    FaceAnalyzer,
    GalleryPort,
    HistoryLog,
    ParticipantRepository,
    ScanLedger,
    StampBook,
)
from eventface.ports_access import (
    ApiKeyRepository,
    AuditLog,
    MembershipDirectory,
    ProbeWatchStore,
    RateLimiter,
    TokenVerifier,
    UserDirectory,
)
from eventface.ports_vip import (
    AlertStore,
    CrmDirectory,
    EgressPolicy,
    MessageStore,
    StaffDeviceRepository,
    TenantSecretCatalog,
    VenueRepository,
    VipMemberRepository,
)
from eventface.services.rate_limits import RateLimits
from mobile_push import PushSender


@dataclass(frozen=True, slots=True)
class Policy:
    """Tunable values of the use cases (from settings in production, explicit in tests)."""

    fmr_per_scan: float = 1e-3
    history_ttl: timedelta = DEFAULT_HISTORY_TTL
    cooldown_seconds: int = DEFAULT_COOLDOWN_SECONDS
    max_page: int = 100
    audit_retention_days: int = 400
    alert_retention_days: int = 90
    rate_limits: RateLimits = field(default_factory=RateLimits)
    #: Faces of a sighting frame that are searched, largest first.
    max_faces_per_frame: int = 5
    #: Period of the erasure sweep, and how long it keeps replaced gallery objects for readers:
    #: together they bound how long an erased template stays in storage.
    gallery_sweep_period: timedelta = timedelta(minutes=5)
    gallery_retired_grace: timedelta = timedelta(hours=1)
    #: When a device's Type B probes are throttled or blocked (see its docstring for the numbers).
    probe_guard: ProbeGuardPolicy = field(default_factory=ProbeGuardPolicy)

    def page_limit(self, limit: int) -> int:
        """``limit`` if it is a page size the listings allow (1 to ``max_page``), else
        InvalidInputError."""
        if not 1 <= limit <= self.max_page:
            raise InvalidInputError(f"limit must be between 1 and {self.max_page}")
        return limit


class Deps(Protocol):
    """Every port a use case may need (each use case touches only its own, so a lazy container
    builds only those)."""

    @property
    def campaigns(self) -> CampaignRepository: ...
    @property
    def participants(self) -> ParticipantRepository: ...
    @property
    def stamps(self) -> StampBook: ...
    @property
    def history(self) -> HistoryLog: ...
    @property
    def devices(self) -> DeviceRegistry: ...
    @property
    def gallery(self) -> GalleryPort: ...
    @property
    def ledger(self) -> ScanLedger: ...
    @property
    def api_keys(self) -> ApiKeyRepository: ...
    @property
    def audit(self) -> AuditLog: ...
    @property
    def tokens(self) -> TokenVerifier: ...
    @property
    def limiter(self) -> RateLimiter: ...
    @property
    def memberships(self) -> MembershipDirectory: ...
    @property
    def users(self) -> UserDirectory: ...

    @property
    def probe_watch(self) -> ProbeWatchStore: ...
    @property
    def venues(self) -> VenueRepository: ...
    @property
    def vip_members(self) -> VipMemberRepository: ...
    @property
    def staff_devices(self) -> StaffDeviceRepository: ...
    @property
    def alerts(self) -> AlertStore: ...
    @property
    def messages(self) -> MessageStore: ...
    @property
    def crm(self) -> CrmDirectory: ...
    @property
    def push(self) -> PushSender: ...
    @property
    def egress(self) -> EgressPolicy: ...
    @property
    def secrets(self) -> TenantSecretCatalog: ...
    @property
    def faces(self) -> FaceAnalyzer: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def policy(self) -> Policy: ...
    @property
    def cursors(self) -> CursorSeal: ...
