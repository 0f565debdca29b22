"""Access control: who is calling (a principal), what they may do (authorities), what they did (audit).

NeoFace Cloud's model: edge terminals authenticate as devices, people as users (OpenID Connect
tokens) and system integrations with management API keys. Authorities are granted one by one;
everything is scoped to one tenant, and a principal never sees another tenant's records (404, not
403, for foreign ids).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final


class Authority(StrEnum):
    """A right granted separately to a user or a management API key."""

    TARGETS = "targets"  # register, list and erase people (faces)
    HISTORY = "history"  # read recognition history
    API_KEYS = "api_keys"  # create, list and revoke management API keys
    TERMINALS = "terminals"  # register, activate, rotate and revoke edge terminals
    CAMPAIGNS = "campaigns"  # create, change, publish and end campaigns and checkpoints
    VENUE_STAFF = "venue_staff"  # receive and acknowledge VIP alerts
    TENANT_ADMIN = "tenant_admin"  # read the audit log; manage users' authorities


#: Every authority, in a stable order (for listings and the local stack's demo users).
ALL_AUTHORITIES: Final = tuple(Authority)


class PrincipalKind(StrEnum):
    USER = "user"
    API_KEY = "api_key"
    DEVICE = "device"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller, bound to one tenant."""

    tenant_id: str
    kind: PrincipalKind
    principal_id: str  # user sub, key id or device id
    authorities: frozenset[Authority] = frozenset()
    name: str = ""

    def has(self, authority: Authority) -> bool:
        return authority in self.authorities

    @property
    def actor(self) -> str:
        """How the audit log names the caller: ``user:<sub>``, ``api_key:<id>``, ``device:<id>``."""
        return f"{self.kind.value}:{self.principal_id}"


def parse_authorities(values: object) -> frozenset[Authority]:
    """Authorities from a list of names; ValueError naming the unknown ones."""
    if not isinstance(values, list | tuple | set | frozenset) or not all(isinstance(v, str) for v in values):
        raise ValueError("authorities must be a list of names")
    known = {a.value for a in Authority}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown authorities {unknown}: choose from {sorted(known)}")
    return frozenset(Authority(v) for v in values)


def secret_hash(secret: str) -> str:
    """SHA-256 hex of a random secret (API key, device key, activation code); never stored plain."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A management API key for a system integration; only the hash of the secret is stored.

    ``prefix`` (the first characters of the secret) is what listings show, so an operator can
    tell keys apart without the secret.
    """

    tenant_id: str
    key_id: str
    name: str
    prefix: str
    key_hash: str
    authorities: frozenset[Authority]
    created_at: datetime
    created_by: str
    expires_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at


class AuditOutcome(StrEnum):
    OK = "ok"
    DENIED = "denied"  # authenticated, but lacking the authority (403)
    UNAUTHENTICATED = "unauthenticated"  # bad, expired, revoked or foreign credentials (401)
    NOT_FOUND = "not_found"
    FAILED = "failed"  # the action was allowed but failed (4xx/5xx from the service)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the append-only audit log: who did what to what, when, and how it ended.

    ``tenant_id`` is the tenant the action was aimed at ("-" when the credentials named none).
    Never holds a face, a template or a secret.
    """

    tenant_id: str
    entry_id: str
    at: datetime
    actor: str  # Principal.actor, or "anonymous"
    action: str  # e.g. "scan", "participants.register", "history.read", "auth.token"
    target: str  # the resource path or id the action touched
    outcome: AuditOutcome
    detail: str = ""
    expires_at: datetime | None = None


#: The identity provider's user attribute (and ID token claim) that names a user's tenant. Only the
#: platform sets it: immutable in the user pool and writable by no app client.
TENANT_ATTRIBUTE: Final = "custom:tenant_id"
#: A tenant id: letters, digits, ``_`` and ``-``, starting with a letter or digit (it is part of
#: composite keys such as ``tenant#campaign``, so ``#`` and other separators are refused).
TENANT_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def valid_tenant_id(tenant_id: str) -> bool:
    """Whether ``tenant_id`` is a well-formed tenant id (see :data:`TENANT_ID_PATTERN`)."""
    return TENANT_ID_PATTERN.fullmatch(tenant_id) is not None


@dataclass(frozen=True, slots=True)
class Membership:
    """A user's membership of a tenant: the platform's record of which tenant a user belongs to.

    Only the platform writes it (the operators' ``eventface users`` commands, the local stack's
    seeding), never the API and never the user; the management API admits a signed-in user only to
    a tenant they hold a membership of, whatever their token claims.
    """

    tenant_id: str
    user_sub: str  # the identity provider's stable user id (the token's ``sub``)
    username: str
    granted_at: datetime
    granted_by: str = ""  # who granted it (an operator's name, "local-stack")


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    """A user as the identity provider knows them (Cognito's user pool)."""

    username: str
    sub: str
    tenant_id: str | None  # the ``custom:tenant_id`` attribute, None when unset
    enabled: bool = True
