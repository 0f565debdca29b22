"""The composition root: the one place that picks adapters and wires them into the services.

``bootstrap()`` returns ``Services``, whose methods are the use cases. Real adapters are built on
first use and cached (a warm Lambda keeps them), so a function that only reads history never
loads the face engine. Tests pass fakes as keyword overrides::

    services = bootstrap(campaigns=InMemoryCampaignRepository(), clock=FixedClock(), ...)
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar, cast

from eventface.domain.access import ApiKey, AuditEntry, AuditOutcome, Authority, Membership, Principal
from eventface.domain.cursors import MIN_KEY_BYTES, CursorSeal
from eventface.domain.model import (
    Campaign,
    Checkpoint,
    Device,
    DeviceCredential,
    ErasureReceipt,
    HistoryQuery,
    NotificationTexts,
    Page,
    Participant,
    Progress,
    RecognitionEvent,
    ScanResult,
)
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
from eventface.services import api_keys as api_key_service
from eventface.services import auth as auth_service
from eventface.services import campaigns as campaign_service
from eventface.services import devices as device_service
from eventface.services import history as history_service
from eventface.services import memberships as membership_service
from eventface.services import participants as participant_service
from eventface.services import probe_guard as probe_guard_service
from eventface.services import scans as scan_service
from eventface.services.campaigns import CampaignChanges
from eventface.services.deps import Policy
from eventface.services.devices import DeviceActivation, DeviceRegistration
from eventface.services.participants import Registration
from eventface.services.rate_limits import RateLimits
from eventface.services.scans import Scan
from eventface.settings import Settings, get_settings
from mobile_push import PushSender

T = TypeVar("T")

PORTS: Final = (
    "campaigns",
    "participants",
    "stamps",
    "history",
    "devices",
    "gallery",
    "ledger",
    "api_keys",
    "audit",
    "tokens",
    "limiter",
    "memberships",
    "users",
    "probe_watch",
    "venues",
    "vip_members",
    "staff_devices",
    "alerts",
    "messages",
    "crm",
    "push",
    "egress",
    "secrets",
    "faces",
    "clock",
    "policy",
    "cursors",
)


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class Container:
    """Lazily built, cached adapters; an override replaces the real one (satisfies ``Deps``)."""

    def __init__(self, settings: Settings, overrides: dict[str, Any]) -> None:
        unknown = set(overrides) - set(PORTS)
        if unknown:
            raise TypeError(f"unknown overrides {sorted(unknown)}: choose from {list(PORTS)}")
        self.settings = settings
        self._built: dict[str, Any] = dict(overrides)
        self._lock = threading.RLock()

    def _get(self, name: str, factory: Callable[[], T]) -> T:
        if name not in self._built:
            with self._lock:
                if name not in self._built:
                    self._built[name] = factory()
        return cast(T, self._built[name])

    def _tables(self) -> Any:
        from eventface.adapters import dynamo_repositories

        return self._get("_tables", lambda: dynamo_repositories.DynamoTables(self.settings.table_prefix))

    @property
    def campaigns(self) -> CampaignRepository:
        return self._get("campaigns", self._make_campaigns)

    def _make_campaigns(self) -> CampaignRepository:
        from eventface.adapters.dynamo_repositories import DynamoCampaignRepository
        from eventface.adapters.read_cache import CachedCampaignRepository, TtlCache

        repository = DynamoCampaignRepository(self._tables())
        ttl = self.settings.read_cache_seconds
        return CachedCampaignRepository(repository, TtlCache(ttl)) if ttl > 0 else repository

    @property
    def participants(self) -> ParticipantRepository:
        return self._get("participants", self._make_participants)

    def _make_participants(self) -> ParticipantRepository:
        from eventface.adapters.dynamo_repositories import DynamoParticipantRepository

        return DynamoParticipantRepository(self._tables())

    @property
    def stamps(self) -> StampBook:
        return self._get("stamps", self._make_stamps)

    def _make_stamps(self) -> StampBook:
        from eventface.adapters.dynamo_repositories import DynamoStampBook

        return DynamoStampBook(self._tables())

    @property
    def history(self) -> HistoryLog:
        return self._get("history", self._make_history)

    def _make_history(self) -> HistoryLog:
        from eventface.adapters.dynamo_repositories import DynamoHistoryLog

        return DynamoHistoryLog(self._tables())

    @property
    def devices(self) -> DeviceRegistry:
        return self._get("devices", self._make_devices)

    def _make_devices(self) -> DeviceRegistry:
        from eventface.adapters.dynamo_repositories import DynamoDeviceRegistry

        return DynamoDeviceRegistry(self._tables())

    @property
    def ledger(self) -> ScanLedger:
        return self._get("ledger", self._make_ledger)

    def _make_ledger(self) -> ScanLedger:
        from eventface.adapters.dynamo_repositories import DynamoScanLedger

        return DynamoScanLedger(self._tables())

    @property
    def api_keys(self) -> ApiKeyRepository:
        return self._get("api_keys", self._make_api_keys)

    def _make_api_keys(self) -> ApiKeyRepository:
        from eventface.adapters.dynamo_access import DynamoApiKeyRepository

        return DynamoApiKeyRepository(self._tables())

    @property
    def audit(self) -> AuditLog:
        return self._get("audit", self._make_audit)

    def _make_audit(self) -> AuditLog:
        from eventface.adapters.dynamo_access import DynamoAuditLog

        return DynamoAuditLog(self._tables())

    @property
    def tokens(self) -> TokenVerifier:
        return self._get("tokens", self._make_tokens)

    def _make_tokens(self) -> TokenVerifier:
        from eventface.adapters.oidc import OidcConfig, OidcVerifier

        return OidcVerifier(
            OidcConfig(
                jwks_url=self.settings.oidc_jwks_url,
                issuer=self.settings.oidc_issuer,
                client_id=self.settings.oidc_client_id,
            )
        )

    @property
    def limiter(self) -> RateLimiter:
        return self._get("limiter", self._make_limiter)

    def _make_limiter(self) -> RateLimiter:
        from eventface.adapters.rate_limit import DynamoRateLimiter

        return DynamoRateLimiter(self._tables())

    @property
    def memberships(self) -> MembershipDirectory:
        return self._get("memberships", self._make_memberships)

    def _make_memberships(self) -> MembershipDirectory:
        from eventface.adapters.dynamo_memberships import DynamoMembershipDirectory
        from eventface.adapters.membership_cache import CachedMembershipDirectory
        from eventface.adapters.read_cache import TtlCache

        directory = DynamoMembershipDirectory(self._tables())
        ttl = self.settings.membership_cache_seconds
        return CachedMembershipDirectory(directory, TtlCache(ttl)) if ttl > 0 else directory

    @property
    def users(self) -> UserDirectory:
        return self._get("users", self._make_users)

    def _make_users(self) -> UserDirectory:
        from eventface.adapters.cognito_users import CognitoUserDirectory

        return CognitoUserDirectory(self.settings.user_pool_id)

    @property
    def probe_watch(self) -> ProbeWatchStore:
        return self._get("probe_watch", self._make_probe_watch)

    def _make_probe_watch(self) -> ProbeWatchStore:
        from eventface.adapters.probe_watch import DynamoProbeWatchStore

        return DynamoProbeWatchStore(self._tables())

    @property
    def venues(self) -> VenueRepository:
        return self._get("venues", self._make_venues)

    def _make_venues(self) -> VenueRepository:
        from eventface.adapters.dynamo_vip import DynamoVenueRepository
        from eventface.adapters.read_cache import CachedVenueRepository, TtlCache

        repository = DynamoVenueRepository(self._tables())
        ttl = self.settings.read_cache_seconds
        return CachedVenueRepository(repository, TtlCache(ttl)) if ttl > 0 else repository

    @property
    def vip_members(self) -> VipMemberRepository:
        return self._get("vip_members", self._make_vip_members)

    def _make_vip_members(self) -> VipMemberRepository:
        from eventface.adapters.dynamo_vip import DynamoVipMemberRepository

        return DynamoVipMemberRepository(self._tables())

    @property
    def staff_devices(self) -> StaffDeviceRepository:
        return self._get("staff_devices", self._make_staff_devices)

    def _make_staff_devices(self) -> StaffDeviceRepository:
        from eventface.adapters.dynamo_vip import DynamoStaffDeviceRepository

        return DynamoStaffDeviceRepository(self._tables())

    @property
    def alerts(self) -> AlertStore:
        return self._get("alerts", self._make_alerts)

    def _make_alerts(self) -> AlertStore:
        from eventface.adapters.dynamo_vip import DynamoAlertStore

        return DynamoAlertStore(self._tables())

    @property
    def messages(self) -> MessageStore:
        return self._get("messages", self._make_messages)

    def _make_messages(self) -> MessageStore:
        from eventface.adapters.dynamo_vip import DynamoMessageStore

        return DynamoMessageStore(self._tables())

    @property
    def crm(self) -> CrmDirectory:
        return self._get("crm", self._make_crm)

    def _make_crm(self) -> CrmDirectory:
        from eventface.adapters.crm import VenueCrmDirectory, guarded_transport
        from eventface.adapters.egress import guard_from_settings

        return VenueCrmDirectory(transport=guarded_transport(guard_from_settings(self.settings)))

    @property
    def egress(self) -> EgressPolicy:
        return self._get("egress", self._make_egress)

    def _make_egress(self) -> EgressPolicy:
        from eventface.adapters.egress import guard_from_settings

        return guard_from_settings(self.settings)

    @property
    def secrets(self) -> TenantSecretCatalog:
        return self._get("secrets", self._make_secrets)

    def _make_secrets(self) -> TenantSecretCatalog:
        from eventface.adapters.tenant_secrets import SecretsManagerSecretCatalog

        return SecretsManagerSecretCatalog()

    @property
    def push(self) -> PushSender:
        return self._get("push", self._make_push)

    def _make_push(self) -> PushSender:
        from eventface.adapters.push import build_push_sender

        return build_push_sender(self.settings)

    @property
    def gallery(self) -> GalleryPort:
        return self._get("gallery", self._make_gallery)

    def _make_gallery(self) -> GalleryPort:
        from eventface.adapters.s3_gallery_port import S3GalleryPort

        return S3GalleryPort(
            self.settings.gallery_bucket,
            threads=self.settings.engine_threads,
            spill_dir=self.settings.spill_dir,
        )

    @property
    def faces(self) -> FaceAnalyzer:
        return self._get("faces", self._make_faces)

    def _make_faces(self) -> FaceAnalyzer:
        from eventface.adapters.face_analyzer import EngineFaceAnalyzer

        return EngineFaceAnalyzer(
            models_dir=self.settings.models_dir,
            threads=self.settings.engine_threads,
            max_photo_bytes=self.settings.max_photo_bytes,
            edge_max_pixels=self.settings.edge_max_pixels,
            registration_max_pixels=self.settings.registration_max_pixels,
        )

    @property
    def clock(self) -> Clock:
        return self._get("clock", SystemClock)

    @property
    def cursors(self) -> CursorSeal:
        return self._get("cursors", self._make_cursors)

    def _make_cursors(self) -> CursorSeal:
        from eventface.adapters.platform_secrets import read_secret_bytes

        return CursorSeal(read_secret_bytes(self.settings.cursor_secret_id, min_bytes=MIN_KEY_BYTES))

    @property
    def policy(self) -> Policy:
        return self._get(
            "policy",
            lambda: Policy(
                fmr_per_scan=self.settings.fmr_per_scan,
                history_ttl=timedelta(hours=self.settings.history_ttl_hours),
                cooldown_seconds=self.settings.cooldown_seconds,
                audit_retention_days=self.settings.audit_retention_days,
                alert_retention_days=self.settings.alert_retention_days,
                max_faces_per_frame=self.settings.max_faces_per_frame,
                gallery_sweep_period=timedelta(minutes=self.settings.gallery_sweep_minutes),
                gallery_retired_grace=timedelta(seconds=self.settings.gallery_retired_grace_seconds),
                rate_limits=RateLimits(
                    per_device_per_minute=self.settings.device_requests_per_minute,
                    per_key_per_minute=self.settings.key_requests_per_minute,
                    failed_auth_per_minute=self.settings.failed_auth_per_minute,
                ),
            ),
        )


class Services:
    """The use cases, bound to one container (see :func:`bootstrap`)."""

    def __init__(self, deps: Container) -> None:
        self.deps = deps

    # -- scans -------------------------------------------------------------------------------
    def record_scan(self, scan: Scan) -> ScanResult:
        return scan_service.record_scan(self.deps, scan)

    # -- participants ------------------------------------------------------------------------
    def register_participant(self, registration: Registration) -> Participant:
        return participant_service.register_participant(self.deps, registration)

    def get_progress(
        self, tenant_id: str, campaign_id: str, participant_id: str
    ) -> tuple[Participant, Progress]:
        return participant_service.get_progress(self.deps, tenant_id, campaign_id, participant_id)

    def list_participants(
        self, tenant_id: str, campaign_id: str, limit: int = 50, cursor: str | None = None
    ) -> Page[Participant]:
        return participant_service.list_participants(self.deps, tenant_id, campaign_id, limit, cursor)

    def erase_participant(self, tenant_id: str, campaign_id: str, participant_id: str) -> ErasureReceipt:
        return participant_service.erase_participant(self.deps, tenant_id, campaign_id, participant_id)

    # -- campaigns ---------------------------------------------------------------------------
    def create_campaign(
        self,
        tenant_id: str,
        campaign_id: str,
        name: str,
        starts_at: datetime,
        ends_at: datetime,
        *,
        checkpoints: tuple[Checkpoint, ...] = (),
        stamps_required: int = 1,
        reward_text: str = "",
        texts: NotificationTexts | None = None,
        cooldown_seconds: int | None = None,
    ) -> Campaign:
        return campaign_service.create_campaign(
            self.deps,
            tenant_id,
            campaign_id,
            name,
            starts_at=starts_at,
            ends_at=ends_at,
            checkpoints=checkpoints,
            stamps_required=stamps_required,
            reward_text=reward_text,
            texts=texts,
            cooldown_seconds=cooldown_seconds,
        )

    def update_campaign(self, tenant_id: str, campaign_id: str, changes: CampaignChanges) -> Campaign:
        return campaign_service.update_campaign(self.deps, tenant_id, campaign_id, changes)

    def add_checkpoint(self, tenant_id: str, campaign_id: str, checkpoint: Checkpoint) -> Campaign:
        return campaign_service.add_checkpoint(self.deps, tenant_id, campaign_id, checkpoint)

    def remove_checkpoint(self, tenant_id: str, campaign_id: str, checkpoint_id: str) -> Campaign:
        return campaign_service.remove_checkpoint(self.deps, tenant_id, campaign_id, checkpoint_id)

    def publish_campaign(self, tenant_id: str, campaign_id: str) -> Campaign:
        return campaign_service.publish_campaign(self.deps, tenant_id, campaign_id)

    def end_campaign(self, tenant_id: str, campaign_id: str) -> Campaign:
        return campaign_service.end_campaign(self.deps, tenant_id, campaign_id)

    def get_campaign(self, tenant_id: str, campaign_id: str) -> Campaign:
        return campaign_service.get_campaign(self.deps, tenant_id, campaign_id)

    def list_campaigns(self, tenant_id: str, limit: int = 50, cursor: str | None = None) -> Page[Campaign]:
        return campaign_service.list_campaigns(self.deps, tenant_id, limit, cursor)

    # -- devices -----------------------------------------------------------------------------
    def register_device(
        self, tenant_id: str, campaign_id: str, checkpoint_id: str, name: str = "", *, type_b: bool = False
    ) -> DeviceRegistration:
        return device_service.register_device(
            self.deps, tenant_id, campaign_id, checkpoint_id, name, type_b=type_b
        )

    def new_activation_code(self, tenant_id: str, device_id: str) -> DeviceRegistration:
        return device_service.new_activation_code(self.deps, tenant_id, device_id)

    def activate_device(self, code: str | None) -> DeviceActivation:
        return device_service.activate_device(self.deps, code)

    def authenticate_device(self, key: str | None) -> DeviceCredential:
        return device_service.authenticate_device(self.deps, key)

    def rotate_device_key(self, current: DeviceCredential) -> DeviceActivation:
        return device_service.rotate_device_key(self.deps, current)

    def revoke_device(self, tenant_id: str, device_id: str) -> Device:
        return device_service.revoke_device(self.deps, tenant_id, device_id)

    def list_devices(self, tenant_id: str, limit: int = 50, cursor: str | None = None) -> Page[Device]:
        page = device_service.list_devices(self.deps, tenant_id, limit, cursor)
        return probe_guard_service.with_status(self.deps, page)

    def set_type_b(self, tenant_id: str, device_id: str, type_b: bool) -> Device:
        device = device_service.set_type_b(self.deps, tenant_id, device_id, type_b)
        return probe_guard_service.status_of(self.deps, device)

    def clear_probe_abuse(self, tenant_id: str, device_id: str) -> Device:
        return probe_guard_service.clear(self.deps, tenant_id, device_id)

    # -- access control ----------------------------------------------------------------------
    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        return auth_service.authenticate(self.deps, headers)

    def require(self, principal: Principal, authority: Authority | None) -> None:
        auth_service.require(principal, authority)

    def limit(self, principal: Principal) -> None:
        auth_service.limit(self.deps, principal)

    def authentication_failed(self, source: str) -> None:
        auth_service.failed(self.deps, source)

    def admit(self, source: str) -> None:
        auth_service.admit(self.deps, source)

    def screen(self, source: str) -> None:
        auth_service.screen(self.deps, source)

    def audit(
        self,
        *,
        principal: Principal | None,
        action: str,
        target: str,
        outcome: AuditOutcome,
        detail: str = "",
    ) -> None:
        auth_service.audit(
            self.deps, principal=principal, action=action, target=target, outcome=outcome, detail=detail
        )

    def add_user(self, user: membership_service.NewUser) -> Membership:
        return membership_service.add_user(self.deps, user)

    def grant_membership(self, tenant_id: str, username: str, granted_by: str = "") -> Membership:
        return membership_service.grant_membership(self.deps, tenant_id, username, granted_by)

    def revoke_membership(self, tenant_id: str, username: str) -> bool:
        return membership_service.revoke_membership(self.deps, tenant_id, username)

    def memberships_of(self, username: str) -> tuple[Membership, ...]:
        return membership_service.memberships_of(self.deps, username)

    def create_api_key(
        self, principal: Principal, name: str, authorities: frozenset[Authority], ttl: timedelta
    ) -> tuple[ApiKey, str]:
        return api_key_service.create_api_key(
            self.deps.api_keys, self.deps.clock, principal, name, authorities, ttl
        )

    def list_api_keys(self, principal: Principal, limit: int = 50, cursor: str | None = None) -> Page[ApiKey]:
        return api_key_service.list_api_keys(
            self.deps.api_keys, principal, limit, cursor, cursors=self.deps.cursors
        )

    def revoke_api_key(self, principal: Principal, key_id: str) -> ApiKey:
        return api_key_service.revoke_api_key(self.deps.api_keys, self.deps.clock, principal, key_id)

    def read_audit(
        self,
        principal: Principal,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[AuditEntry]:
        return api_key_service.read_audit(
            self.deps.audit,
            principal,
            since=since,
            until=until,
            actor=actor,
            action=action,
            limit=limit,
            cursor=cursor,
            cursors=self.deps.cursors,
        )

    # -- history -----------------------------------------------------------------------------
    def list_history(
        self,
        tenant_id: str,
        campaign_id: str,
        limit: int = 50,
        cursor: str | None = None,
        *,
        query: HistoryQuery | None = None,
    ) -> Page[RecognitionEvent]:
        return history_service.list_history(self.deps, tenant_id, campaign_id, limit, cursor, query=query)


def bootstrap(settings: Settings | None = None, **overrides: Any) -> Services:
    """Wire the services: real adapters (built lazily) unless overridden by keyword.

    Parameters
    ----------
    settings
        Defaults to the process settings (environment snapshot).
    **overrides
        Port name (``campaigns``, ``participants``, ``stamps``, ``history``, ``devices``,
        ``gallery``, ``ledger``, ``faces``, ``clock``, ``policy``, ``cursors``...) → adapter.
    """
    return Services(Container(settings or get_settings(), overrides))


@functools.cache
def services() -> Services:
    """The process-wide services with the real adapters (kept for the life of the container)."""
    return bootstrap()
