"""Settings: the only reader of ``os.environ``.

``get_settings()`` snapshots the environment once per process into a frozen ``Settings``. Reading
a required value that is missing raises ``SettingsError`` naming the variable, at first use, so a
function that never touches (say) the queue does not need its URL.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeVar

T = TypeVar("T")

TABLE_PREFIX: Final = "EVENTFACE_TABLE_PREFIX"
GALLERY_BUCKET: Final = "EVENTFACE_GALLERY_BUCKET"
NOTIFICATION_QUEUE_URL: Final = "EVENTFACE_NOTIFICATION_QUEUE_URL"
MODELS_DIR: Final = "EVENTFACE_MODELS_DIR"
SPILL_DIR: Final = "EVENTFACE_SPILL_DIR"
ENGINE_THREADS: Final = "EVENTFACE_ENGINE_THREADS"
FMR_PER_SCAN: Final = "EVENTFACE_FMR_PER_SCAN"
COOLDOWN_SECONDS: Final = "EVENTFACE_COOLDOWN_SECONDS"
READ_CACHE_SECONDS: Final = "EVENTFACE_READ_CACHE_SECONDS"
HISTORY_TTL_HOURS: Final = "EVENTFACE_HISTORY_TTL_HOURS"
MAX_PHOTO_BYTES: Final = "EVENTFACE_MAX_PHOTO_BYTES"
MAX_BODY_BYTES: Final = "EVENTFACE_MAX_BODY_BYTES"
STAGE: Final = "EVENTFACE_STAGE"
OIDC_JWKS_URL: Final = "EVENTFACE_OIDC_JWKS_URL"
OIDC_ISSUER: Final = "EVENTFACE_OIDC_ISSUER"
OIDC_CLIENT_ID: Final = "EVENTFACE_OIDC_CLIENT_ID"
AUDIT_RETENTION_DAYS: Final = "EVENTFACE_AUDIT_RETENTION_DAYS"
ALERT_RETENTION_DAYS: Final = "EVENTFACE_ALERT_RETENTION_DAYS"
DEVICE_REQUESTS_PER_MINUTE: Final = "EVENTFACE_DEVICE_REQUESTS_PER_MINUTE"
KEY_REQUESTS_PER_MINUTE: Final = "EVENTFACE_KEY_REQUESTS_PER_MINUTE"
FAILED_AUTH_PER_MINUTE: Final = "EVENTFACE_FAILED_AUTH_PER_MINUTE"
SIGHTING_QUEUE_URL: Final = "EVENTFACE_SIGHTING_QUEUE_URL"
MAX_FACES_PER_FRAME: Final = "EVENTFACE_MAX_FACES_PER_FRAME"
PUSH_INBOX_DIR: Final = "EVENTFACE_PUSH_INBOX_DIR"
SNS_APNS_APPLICATION_ARN: Final = "EVENTFACE_SNS_APNS_APPLICATION_ARN"
SNS_FCM_APPLICATION_ARN: Final = "EVENTFACE_SNS_FCM_APPLICATION_ARN"
PUSH_WEBHOOK_SECRET_ID: Final = "EVENTFACE_PUSH_WEBHOOK_SECRET_ID"
IDEMPOTENCY_TTL_HOURS: Final = "EVENTFACE_IDEMPOTENCY_TTL_HOURS"
MEMBERSHIP_CACHE_SECONDS: Final = "EVENTFACE_MEMBERSHIP_CACHE_SECONDS"
USER_POOL_ID: Final = "EVENTFACE_USER_POOL_ID"
GALLERY_SWEEP_MINUTES: Final = "EVENTFACE_GALLERY_SWEEP_MINUTES"
GALLERY_RETIRED_GRACE_SECONDS: Final = "EVENTFACE_GALLERY_RETIRED_GRACE_SECONDS"
CURSOR_SECRET_ID: Final = "EVENTFACE_CURSOR_SECRET_ID"
EDGE_MAX_PIXELS: Final = "EVENTFACE_EDGE_MAX_PIXELS"
REGISTRATION_MAX_PIXELS: Final = "EVENTFACE_REGISTRATION_MAX_PIXELS"
#: The pixel caps may be lowered, or raised up to face_engine's absolute cap (40 MP).
_PIXEL_CAP_RANGE: Final = (300_000, 40_000_000)
EGRESS_ALLOW: Final = "EVENTFACE_EGRESS_ALLOW"


class SettingsError(RuntimeError):
    """A required environment variable is missing or has an unusable value."""


def _parse(name: str, raw: str, kind: Callable[[str], T], check: Callable[[T], bool], hint: str) -> T:
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not valid: set it to {hint}") from None
    if not check(value):
        raise SettingsError(f"{name}={raw!r} is out of range: set it to {hint}")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    """A snapshot of the environment with typed accessors (see the module docstring)."""

    environ: Mapping[str, str] = field(default_factory=dict)

    def _required(self, name: str) -> str:
        value = self.environ.get(name, "").strip()
        if not value:
            raise SettingsError(f"environment variable {name} is not set: the deployment must define it")
        return value

    def _optional(self, name: str) -> str | None:
        value = self.environ.get(name, "").strip()
        return value or None

    @property
    def stage(self) -> str:
        """Deployment stage (``local``, ``dev``, ``prod``...); ``local`` by default."""
        return self._optional(STAGE) or "local"

    @property
    def table_prefix(self) -> str:
        """Prefix of the DynamoDB table names (``<prefix>-campaigns``...)."""
        return self._required(TABLE_PREFIX)

    @property
    def gallery_bucket(self) -> str:
        """S3 bucket of the galleries."""
        return self._required(GALLERY_BUCKET)

    @property
    def notification_queue_url(self) -> str:
        """SQS queue of notification jobs."""
        return self._required(NOTIFICATION_QUEUE_URL)

    @property
    def models_dir(self) -> Path | None:
        """Prepared models' directory; None means the engine's per-user default."""
        value = self._optional(MODELS_DIR)
        return Path(value) if value else None

    @property
    def spill_dir(self) -> Path | None:
        """Where gallery indexes memory-map their re-rank rows (Lambda: /tmp); None keeps them in RAM."""
        value = self._optional(SPILL_DIR)
        return Path(value) if value else None

    @property
    def engine_threads(self) -> int:
        """onnxruntime threads: the function's vCPUs (1 by default)."""
        return _parse(
            ENGINE_THREADS, self._optional(ENGINE_THREADS) or "1", int, lambda v: 1 <= v <= 64, "1-64"
        )

    @property
    def fmr_per_scan(self) -> float:
        """Accepted false-match rate per scan (1e-3 by default)."""
        raw = self._optional(FMR_PER_SCAN) or "1e-3"
        return _parse(FMR_PER_SCAN, raw, float, lambda v: 0.0 < v < 1.0, "a rate between 0 and 1, e.g. 1e-3")

    @property
    def cooldown_seconds(self) -> int:
        """Default cooldown of new campaigns (30 s)."""
        raw = self._optional(COOLDOWN_SECONDS) or "30"
        return _parse(COOLDOWN_SECONDS, raw, int, lambda v: 0 <= v <= 86400, "0-86400 seconds")

    @property
    def read_cache_seconds(self) -> float:
        """How long a warm container may reuse a campaign or device it read (5 s; 0 = never)."""
        raw = self._optional(READ_CACHE_SECONDS) or "5"
        return _parse(READ_CACHE_SECONDS, raw, float, lambda v: 0.0 <= v <= 300.0, "0-300 seconds")

    @property
    def history_ttl_hours(self) -> int:
        """How long non-matching recognition events are kept (72 h)."""
        raw = self._optional(HISTORY_TTL_HOURS) or "72"
        return _parse(HISTORY_TTL_HOURS, raw, int, lambda v: 1 <= v <= 24 * 366, "1-8784 hours")

    @property
    def max_photo_bytes(self) -> int:
        """Largest photo accepted (5 MiB)."""
        raw = self._optional(MAX_PHOTO_BYTES) or str(5 * 1024 * 1024)
        return _parse(MAX_PHOTO_BYTES, raw, int, lambda v: v >= 1024, "a byte count of at least 1024")

    @property
    def max_body_bytes(self) -> int:
        """Largest request body accepted (8 MiB: a base64 photo plus fields)."""
        raw = self._optional(MAX_BODY_BYTES) or str(8 * 1024 * 1024)
        return _parse(MAX_BODY_BYTES, raw, int, lambda v: v >= 1024, "a byte count of at least 1024")

    @property
    def oidc_jwks_url(self) -> str:
        """The identity provider's JWKS (Cognito: ``<issuer>/.well-known/jwks.json``)."""
        return self._required(OIDC_JWKS_URL)

    @property
    def oidc_issuer(self) -> str:
        """The ``iss`` of valid tokens (Cognito: ``https://cognito-idp.<region>.amazonaws.com/<pool>``)."""
        return self._required(OIDC_ISSUER)

    @property
    def oidc_client_id(self) -> str:
        """The app client whose ID tokens the management API accepts."""
        return self._required(OIDC_CLIENT_ID)

    @property
    def audit_retention_days(self) -> int:
        """How long audit entries are kept (400 days: longer than any history)."""
        raw = self._optional(AUDIT_RETENTION_DAYS) or "400"
        return _parse(AUDIT_RETENTION_DAYS, raw, int, lambda v: 1 <= v <= 3650, "a number of days, 1-3650")

    @property
    def alert_retention_days(self) -> int:
        """How long VIP alerts (with their copy of the CRM profile) are kept (90 days)."""
        raw = self._optional(ALERT_RETENTION_DAYS) or "90"
        return _parse(ALERT_RETENTION_DAYS, raw, int, lambda v: 1 <= v <= 3650, "a number of days, 1-3650")

    def _per_minute(self, name: str, default: int) -> int:
        raw = self._optional(name) or str(default)
        return _parse(name, raw, int, lambda v: 1 <= v <= 1_000_000, "a count per minute, 1-1000000")

    @property
    def device_requests_per_minute(self) -> int:
        """Requests one device may make per minute (120: two scans a second)."""
        return self._per_minute(DEVICE_REQUESTS_PER_MINUTE, 120)

    @property
    def key_requests_per_minute(self) -> int:
        """Requests one management API key may make per minute (600)."""
        return self._per_minute(KEY_REQUESTS_PER_MINUTE, 600)

    @property
    def failed_auth_per_minute(self) -> int:
        """Failed authentications one source may make per minute before it is throttled (10)."""
        return self._per_minute(FAILED_AUTH_PER_MINUTE, 10)

    @property
    def sighting_queue_url(self) -> str:
        """SQS queue of VIP alert jobs (consumed by ``vip_enrich``)."""
        return self._required(SIGHTING_QUEUE_URL)

    @property
    def max_faces_per_frame(self) -> int:
        """Faces of one sighting frame that are searched, largest first (5)."""
        raw = self._optional(MAX_FACES_PER_FRAME) or "5"
        return _parse(MAX_FACES_PER_FRAME, raw, int, lambda v: 1 <= v <= 20, "1-20 faces")

    @property
    def push_inbox_dir(self) -> Path | None:
        """Directory of the local inbox push provider (``inbox`` devices); None disables it."""
        value = self._optional(PUSH_INBOX_DIR)
        return Path(value) if value else None

    @property
    def sns_apns_application_arn(self) -> str | None:
        """SNS platform application for APNs devices; None: APNs devices cannot be pushed to."""
        return self._optional(SNS_APNS_APPLICATION_ARN)

    @property
    def sns_fcm_application_arn(self) -> str | None:
        """SNS platform application for FCM devices; None: FCM devices cannot be pushed to."""
        return self._optional(SNS_FCM_APPLICATION_ARN)

    @property
    def push_webhook_secret_id(self) -> str | None:
        """Secrets Manager secret whose value signs webhook pushes (HMAC); None disables webhooks."""
        return self._optional(PUSH_WEBHOOK_SECRET_ID)

    @property
    def idempotency_ttl_hours(self) -> int:
        """How long a consumer remembers a job it handled (24 h: far beyond SQS redelivery)."""
        raw = self._optional(IDEMPOTENCY_TTL_HOURS) or "24"
        return _parse(IDEMPOTENCY_TTL_HOURS, raw, int, lambda v: 1 <= v <= 24 * 14, "1-336 hours")

    @property
    def membership_cache_seconds(self) -> float:
        """How long a warm container reuses a user's tenant membership it read (60 s; 0 = never):
        a membership revoked or granted elsewhere applies within this bound."""
        raw = self._optional(MEMBERSHIP_CACHE_SECONDS) or "60"
        return _parse(MEMBERSHIP_CACHE_SECONDS, raw, float, lambda v: 0.0 <= v <= 300.0, "0-300 seconds")

    @property
    def user_pool_id(self) -> str:
        """The Cognito user pool whose users the platform administers (``eventface users``)."""
        return self._required(USER_POOL_ID)

    @property
    def gallery_sweep_minutes(self) -> int:
        """Period of the erasure sweep (``gallery_compaction``) schedule (5 min): part of the bound
        erasure receipts state; the schedule that runs the sweep must use the same value."""
        raw = self._optional(GALLERY_SWEEP_MINUTES) or "5"
        return _parse(GALLERY_SWEEP_MINUTES, raw, int, lambda v: 1 <= v <= 60, "1-60 minutes")

    @property
    def gallery_retired_grace_seconds(self) -> int:
        """How long objects replaced by a compaction are kept for readers still fetching them
        (3600 s) before the sweep deletes them."""
        raw = self._optional(GALLERY_RETIRED_GRACE_SECONDS) or "3600"
        return _parse(GALLERY_RETIRED_GRACE_SECONDS, raw, int, lambda v: 60 <= v <= 86400, "60-86400 seconds")

    @property
    def cursor_secret_id(self) -> str:
        """Secrets Manager secret (at least 16 bytes) that keys the signature of pagination cursors:
        a cursor is valid only for the tenant, listing and filters it was issued for."""
        return self._required(CURSOR_SECRET_ID)

    def _pixels(self, name: str, default: int) -> int:
        low, high = _PIXEL_CAP_RANGE
        raw = self._optional(name) or str(default)
        return _parse(name, raw, int, lambda v: low <= v <= high, f"a pixel count, {low}-{high}")

    @property
    def edge_max_pixels(self) -> int:
        """Largest scan or sighting photo, in pixels from its header (12 MP): refused with 413
        before it is decoded."""
        return self._pixels(EDGE_MAX_PIXELS, 12_000_000)

    @property
    def registration_max_pixels(self) -> int:
        """Largest registration photo (participant or VIP member), in pixels (24 MP)."""
        return self._pixels(REGISTRATION_MAX_PIXELS, 24_000_000)

    @property
    def egress_allow(self) -> frozenset[tuple[str, int]]:
        """``address:port`` pairs outbound calls may reach although their address is not public
        (the local stack's own loopback test servers); empty by default."""
        from eventface.domain.egress import parse_allow_list

        raw = self._optional(EGRESS_ALLOW) or ""
        try:
            return parse_allow_list(raw)
        except ValueError as exc:
            raise SettingsError(f"{EGRESS_ALLOW}={raw!r} is not valid: {exc}") from None


def from_environ(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``environ`` (the process environment by default), copied once."""
    return Settings(dict(os.environ if environ is None else environ))


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings (snapshotted on first call)."""
    return from_environ()
