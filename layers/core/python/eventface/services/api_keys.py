"""Management API keys (create, authenticate, list, revoke) and the audit log (record, read).

A key's secret is shown once, when it is created; only its SHA-256 is stored, with a short prefix
that listings show so operators can tell keys apart. Only signed-in users create keys (a key
cannot mint keys, so revoking a key ends everything it could do); a key never grants more than
its creator holds, and it expires: there are no everlasting keys.

These use cases take their collaborators explicitly (a repository, the audit log, a clock) rather
than the whole ``Deps`` container, so the request path of authentication stays small.
"""

from __future__ import annotations

import contextlib
import hmac
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Final

from eventface.domain.access import (
    ApiKey,
    AuditEntry,
    AuditOutcome,
    Authority,
    Principal,
    PrincipalKind,
    secret_hash,
)
from eventface.domain.cursors import CursorSeal, Listing
from eventface.domain.errors import (
    EventfaceError,
    ForbiddenError,
    InvalidInputError,
    UnauthorizedError,
)
from eventface.domain.limits import check_name
from eventface.domain.model import Page
from eventface.ports import Clock
from eventface.ports_access import ApiKeyRepository, AuditLog

#: Every secret starts with this, so leaked keys are easy to recognise (secret scanners, logs).
SECRET_PREFIX: Final = "efk_"
#: How many leading characters of the secret are stored and shown in listings.
PREFIX_LENGTH: Final = 12
MAX_NAME_LENGTH: Final = 100
MIN_TTL: Final = timedelta(hours=1)
MAX_TTL: Final = timedelta(days=365)
#: Longer presented secrets are refused before hashing (ours are 47 characters).
MAX_SECRET_LENGTH: Final = 256
#: ``last_used_at`` is written at most this often per key: one write per request would double the
#: cost of every call made with a key.
TOUCH_INTERVAL: Final = timedelta(minutes=1)
MAX_PAGE: Final = 100


def _require(principal: Principal, authority: Authority) -> None:
    if not principal.has(authority):
        raise ForbiddenError(
            f"this action needs the '{authority.value}' authority: ask a tenant admin to grant it"
        )


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInputError(f"limit must be between 1 and {MAX_PAGE}")


def create_api_key(  # noqa: PLR0917 - the signature the API layer calls
    keys: ApiKeyRepository,
    clock: Clock,
    principal: Principal,
    name: str,
    authorities: frozenset[Authority],
    ttl: timedelta,
) -> tuple[ApiKey, str]:
    """Create a key in the principal's tenant; the stored key and its secret (shown only now).

    Parameters
    ----------
    principal
        The creator: a signed-in user (never an API key: a key's children would outlive its
        revocation) holding the ``api_keys`` authority and every authority it grants.
    name
        What the key is for, 1-100 characters (surrounding spaces are dropped).
    authorities
        What the key may do; at least one.
    ttl
        How long the key lives: from 1 hour to 365 days.

    Raises
    ------
    ForbiddenError
        The creator is not a user, or lacks ``api_keys`` or an authority it tries to grant.
    InvalidInputError
        A bad name, no authorities or a ttl out of range.
    """
    _require(principal, Authority.API_KEYS)
    if principal.kind is not PrincipalKind.USER:
        # A key minted by a key would outlive the revocation of its parent: a leaked key could
        # plant successors. Keys are made by people, who sign in (and can be removed) themselves.
        raise ForbiddenError(
            "API keys cannot create API keys: sign in as a user who holds 'api_keys' to create one"
        )
    clean_name = check_name("name", name, MAX_NAME_LENGTH)
    if not authorities:
        raise InvalidInputError("grant the key at least one authority, e.g. ['history']")
    if not MIN_TTL <= ttl <= MAX_TTL:
        raise InvalidInputError("ttl must be between 1 hour and 365 days: create a new key before it expires")
    missing = sorted(a.value for a in authorities - principal.authorities)
    if missing:
        raise ForbiddenError(
            f"you cannot grant authorities you do not hold: {', '.join(missing)}; "
            "ask a tenant admin to grant them to you, or leave them out"
        )
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    now = clock.now()
    key = ApiKey(
        tenant_id=principal.tenant_id,
        key_id=uuid.uuid4().hex,
        name=clean_name,
        prefix=secret[:PREFIX_LENGTH],
        key_hash=secret_hash(secret),
        authorities=frozenset(authorities),
        created_at=now,
        created_by=principal.actor,
        expires_at=now + ttl,
    )
    keys.add(key)
    return key, secret


def authenticate_api_key(keys: ApiKeyRepository, clock: Clock, secret: str | None) -> Principal:
    """The principal of a presented secret, and record its use (``last_used_at``).

    Raises
    ------
    UnauthorizedError
        A missing, unknown, revoked or expired key; the message says which.
    """
    if not secret:
        raise UnauthorizedError("an API key is required: send it in the x-api-key header")
    unknown = UnauthorizedError(
        "unknown API key: check the x-api-key header, or ask a tenant admin to create a new key"
    )
    if len(secret) > MAX_SECRET_LENGTH or not secret.startswith(SECRET_PREFIX):
        raise unknown
    presented = secret_hash(secret)
    key = keys.by_hash(presented)
    # The lookup already matched the hash; the constant-time compare keeps that property explicit.
    if key is None or not hmac.compare_digest(key.key_hash, presented):
        raise unknown
    now = clock.now()
    if key.revoked_at is not None:
        raise UnauthorizedError(
            f"this API key ({key.prefix}...) was revoked: ask a tenant admin to create a new key"
        )
    if now >= key.expires_at:
        raise UnauthorizedError(
            f"this API key ({key.prefix}...) expired at {key.expires_at.isoformat()}: "
            "ask a tenant admin to create a new key"
        )
    if key.last_used_at is None or now - key.last_used_at >= TOUCH_INTERVAL:
        # Bookkeeping only: a valid key is not refused because its use could not be recorded.
        with contextlib.suppress(EventfaceError):
            keys.touch(key.key_hash, now)
    return Principal(
        tenant_id=key.tenant_id,
        kind=PrincipalKind.API_KEY,
        principal_id=key.key_id,
        authorities=key.authorities,
        name=key.name,
    )


def list_api_keys(
    keys: ApiKeyRepository,
    principal: Principal,
    limit: int = 50,
    cursor: str | None = None,
    *,
    cursors: CursorSeal,
) -> Page[ApiKey]:
    """The principal's tenant's keys by id (revoked and expired included); needs ``api_keys``.
    ``cursor`` must be one ``cursors`` issued for this listing, else InvalidInputError."""
    _require(principal, Authority.API_KEYS)
    _check_limit(limit)
    listing = Listing(principal.tenant_id, "api_keys")
    return cursors.page(listing, cursor, lambda at: keys.list(principal.tenant_id, limit, at))


def revoke_api_key(keys: ApiKeyRepository, clock: Clock, principal: Principal, key_id: str) -> ApiKey:
    """Revoke a key of the principal's tenant at once (idempotent); needs ``api_keys``.

    Raises
    ------
    NotFoundError
        No such key in the principal's tenant.
    """
    _require(principal, Authority.API_KEYS)
    return keys.revoke(principal.tenant_id, key_id, clock.now())


def record_audit(
    audit: AuditLog,
    clock: Clock,
    *,
    tenant_id: str,
    actor: str,
    action: str,
    target: str,
    outcome: AuditOutcome,
    detail: str = "",
    retention: timedelta,
) -> AuditEntry:
    """Append an entry (a new uuid, now) that expires after ``retention``; the entry."""
    at = clock.now()
    entry = AuditEntry(
        tenant_id=tenant_id,
        entry_id=uuid.uuid4().hex,
        at=at,
        actor=actor,
        action=action,
        target=target,
        outcome=outcome,
        detail=detail,
        expires_at=at + retention,
    )
    audit.append(entry)
    return entry


def read_audit(
    audit: AuditLog,
    principal: Principal,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    cursors: CursorSeal,
) -> Page[AuditEntry]:
    """One page of the principal's tenant's audit log, newest first; needs ``tenant_admin``.

    ``since`` is inclusive and ``until`` exclusive (both timezone-aware); ``actor`` (e.g.
    ``api_key:<id>``) and ``action`` (e.g. ``campaigns.create``) match exactly. A filtered page
    may hold fewer than ``limit`` entries (even none) and still have a cursor: the store reads a
    bounded number of entries per request. ``cursor`` must be one ``cursors`` issued for this
    tenant and these filters.

    Raises
    ------
    ForbiddenError
        The principal lacks ``tenant_admin``.
    InvalidInputError
        A bad limit, a cursor not issued for this listing, a naive time, or ``since`` not
        before ``until``.
    """
    _require(principal, Authority.TENANT_ADMIN)
    _check_limit(limit)
    for label, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidInputError(f"{label} must include a timezone, e.g. 2026-05-01T09:00:00Z")
    if since is not None and until is not None and since >= until:
        raise InvalidInputError("since must be before until: swap them or widen the range")
    filters = {"since": since, "until": until, "actor": actor, "action": action}
    listing = Listing(principal.tenant_id, "audit", filters=filters)
    return cursors.page(
        listing,
        cursor,
        lambda at: audit.list(
            principal.tenant_id, since=since, until=until, actor=actor, action=action, limit=limit, cursor=at
        ),
    )
