"""Management API keys and the audit log (eventface.services.api_keys) with the in-memory fakes."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eventface.adapters.memory import TEST_CURSOR_KEY, FixedClock
from eventface.adapters.memory_access import InMemoryApiKeyRepository, InMemoryAuditLog
from eventface.domain.access import (
    ALL_AUTHORITIES,
    ApiKey,
    AuditEntry,
    AuditOutcome,
    Authority,
    Principal,
    PrincipalKind,
)
from eventface.domain.cursors import CursorSeal
from eventface.domain.errors import (
    AlreadyExistsError,
    DependencyError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    UnauthorizedError,
)
from eventface.ports_access import AuditLog
from eventface.services.api_keys import (
    authenticate_api_key,
    create_api_key,
    list_api_keys,
    read_audit,
    record_audit,
    revoke_api_key,
)

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
RETENTION = timedelta(days=400)
CURSORS = CursorSeal(TEST_CURSOR_KEY)
#: A user of tenant acme holding every authority.
ADMIN = Principal("acme", PrincipalKind.USER, "alice", frozenset(ALL_AUTHORITIES))


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def keys() -> InMemoryApiKeyRepository:
    return InMemoryApiKeyRepository()


@pytest.fixture
def audit() -> InMemoryAuditLog:
    return InMemoryAuditLog()


@pytest.fixture
def make_principal() -> Callable[..., Principal]:
    def make(
        *authorities: Authority, tenant_id: str = "acme", principal_id: str = "alice", **changes: Any
    ) -> Principal:
        granted = frozenset(authorities) if authorities else frozenset(ALL_AUTHORITIES)
        return Principal(tenant_id, PrincipalKind.USER, principal_id, granted, **changes)

    return make


@pytest.fixture
def admin(make_principal: Callable[..., Principal]) -> Principal:
    """A user of tenant acme holding every authority."""
    return make_principal()


@pytest.fixture
def make_key(keys, clock, admin) -> Callable[..., tuple[ApiKey, str]]:
    def make(
        name: str = "crm sync",
        authorities: frozenset[Authority] = frozenset({Authority.HISTORY}),
        ttl: timedelta = 30 * DAY,
        principal: Principal | None = None,
    ) -> tuple[ApiKey, str]:
        return create_api_key(keys, clock, principal or admin, name, authorities, ttl)

    return make


# ------------------------------------------------------------------------------------- create


def test_create_api_key_returns_the_secret_once_and_stores_only_its_hash(keys, make_key):
    # when
    key, secret = make_key()
    # then
    stored = keys.get("acme", key.key_id)
    assert stored == key
    assert secret.startswith("efk_") and len(secret) >= 4 + 43
    assert stored.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert stored.prefix == secret[:12]
    assert all(getattr(stored, f.name) != secret for f in dataclasses.fields(stored))
    assert secret not in repr(stored)


def test_create_api_key_binds_the_key_to_the_creator(clock, make_principal, make_key):
    # given
    creator = make_principal(Authority.API_KEYS, Authority.HISTORY, tenant_id="globex", principal_id="bob")
    # when
    key, _ = make_key("  nightly export  ", frozenset({Authority.HISTORY}), 7 * DAY, creator)
    # then
    assert (key.tenant_id, key.created_by, key.name) == ("globex", "user:bob", "nightly export")
    assert (key.created_at, key.expires_at) == (NOW, NOW + 7 * DAY)
    assert key.authorities == frozenset({Authority.HISTORY})
    assert key.revoked_at is None and key.last_used_at is None


def test_create_api_key_secrets_and_ids_differ(make_key):
    # when
    made = [make_key() for _ in range(3)]
    # then
    assert len({secret for _, secret in made}) == 3
    assert len({key.key_id for key, _ in made}) == 3


@pytest.mark.parametrize(
    "name",
    ["", "   ", "x" * 101, "crm\x00sync", "crm\nsync", "crm\u202esync", "crm\u200bsync"],
    ids=["empty", "blank", "too-long", "nul", "newline", "rtl-override", "zero-width"],
)
def test_create_api_key_refuses_bad_names(keys, make_key, name):
    # when / then
    with pytest.raises(InvalidInputError, match="name must be 1-100 printable characters"):
        make_key(name)
    assert keys.list("acme").items == ()


def test_create_api_key_accepts_a_name_of_100_characters(make_key):
    # when
    key, _ = make_key("x" * 100)
    # then
    assert key.name == "x" * 100


@pytest.mark.parametrize(
    "ttl",
    [timedelta(0), -DAY, timedelta(minutes=59), timedelta(days=365, seconds=1)],
    ids=["zero", "negative", "under-an-hour", "over-a-year"],
)
def test_create_api_key_refuses_ttl_out_of_range(keys, make_key, ttl):
    # when / then
    with pytest.raises(InvalidInputError, match="ttl must be between 1 hour and 365 days"):
        make_key(ttl=ttl)
    assert keys.list("acme").items == ()


@pytest.mark.parametrize("ttl", [timedelta(hours=1), timedelta(days=365)], ids=["one-hour", "one-year"])
def test_create_api_key_accepts_ttl_at_the_bounds(make_key, ttl):
    # when
    key, _ = make_key(ttl=ttl)
    # then
    assert key.expires_at == NOW + ttl


def test_create_api_key_refuses_a_key_without_authorities(make_key):
    # when / then
    with pytest.raises(InvalidInputError, match="at least one authority"):
        make_key(authorities=frozenset())


def test_create_api_key_cannot_grant_authorities_the_creator_lacks(keys, make_principal, make_key):
    # given
    creator = make_principal(Authority.API_KEYS, Authority.HISTORY)
    wanted = frozenset({Authority.HISTORY, Authority.TENANT_ADMIN, Authority.CAMPAIGNS})
    # when / then
    with pytest.raises(
        ForbiddenError, match="you cannot grant authorities you do not hold: campaigns, tenant_admin"
    ):
        make_key(authorities=wanted, principal=creator)
    assert keys.list("acme").items == ()


def test_create_api_key_refuses_an_api_key_creator_so_no_key_outlives_its_parent(keys, clock, make_key):
    # given: a key that holds api_keys, authenticated as its own principal
    parent, secret = make_key("integration", frozenset({Authority.API_KEYS, Authority.HISTORY}))
    as_key = authenticate_api_key(keys, clock, secret)
    # when / then
    with pytest.raises(ForbiddenError, match="API keys cannot create API keys: sign in as a user"):
        make_key("child", frozenset({Authority.HISTORY}), principal=as_key)
    assert [k.key_id for k in keys.list("acme").items] == [parent.key_id]


def test_create_api_key_needs_the_api_keys_authority(make_principal, make_key):
    # given
    creator = make_principal(Authority.HISTORY)
    # when / then
    with pytest.raises(ForbiddenError, match="'api_keys' authority"):
        make_key(principal=creator)


# ------------------------------------------------------------------------------- authenticate


def test_authenticate_api_key_returns_the_keys_principal(keys, clock, make_key):
    # given
    key, secret = make_key("crm", frozenset({Authority.HISTORY, Authority.TARGETS}))
    # when
    principal = authenticate_api_key(keys, clock, secret)
    # then
    assert principal == Principal(
        "acme", PrincipalKind.API_KEY, key.key_id, frozenset({Authority.HISTORY, Authority.TARGETS}), "crm"
    )
    assert principal.actor == f"api_key:{key.key_id}"


def test_authenticate_api_key_records_the_last_use(keys, clock, make_key):
    # given
    key, secret = make_key()
    clock.advance(3600)
    # when
    authenticate_api_key(keys, clock, secret)
    # then
    assert keys.get("acme", key.key_id).last_used_at == NOW + timedelta(hours=1)


def test_authenticate_api_key_writes_the_last_use_at_most_once_a_minute(keys, clock, make_key):
    # given
    key, secret = make_key()
    authenticate_api_key(keys, clock, secret)
    # when
    clock.advance(30)
    authenticate_api_key(keys, clock, secret)
    within = keys.get("acme", key.key_id).last_used_at
    clock.advance(30)
    authenticate_api_key(keys, clock, secret)
    # then
    assert within == NOW
    assert keys.get("acme", key.key_id).last_used_at == NOW + timedelta(minutes=1)


def test_authenticate_api_key_survives_a_failed_last_use_write(keys, clock, make_key, monkeypatch):
    # given
    _, secret = make_key()

    def broken(key_hash: str, at: datetime) -> None:
        raise DependencyError("DynamoDB is down: retry later")

    monkeypatch.setattr(keys, "touch", broken)
    # when
    principal = authenticate_api_key(keys, clock, secret)
    # then
    assert principal.kind is PrincipalKind.API_KEY


@pytest.mark.parametrize("secret", [None, ""], ids=["missing", "empty"])
def test_authenticate_api_key_refuses_a_missing_key(keys, clock, secret):
    # when / then
    with pytest.raises(UnauthorizedError, match="an API key is required"):
        authenticate_api_key(keys, clock, secret)


@pytest.mark.parametrize(
    "secret",
    ["efk_" + "A" * 43, "not-one-of-ours", "efk_" + "x" * 300],
    ids=["unknown", "foreign-format", "huge"],
)
def test_authenticate_api_key_refuses_an_unknown_key(keys, clock, make_key, secret):
    # given
    make_key()
    # when / then
    with pytest.raises(UnauthorizedError, match="unknown API key"):
        authenticate_api_key(keys, clock, secret)


def test_authenticate_api_key_refuses_a_revoked_key(keys, clock, admin, make_key):
    # given
    key, secret = make_key()
    revoke_api_key(keys, clock, admin, key.key_id)
    # when / then
    with pytest.raises(UnauthorizedError, match="was revoked"):
        authenticate_api_key(keys, clock, secret)


def test_authenticate_api_key_refuses_an_expired_key(keys, clock, make_key):
    # given
    key, secret = make_key(ttl=DAY)
    clock.set(key.expires_at - timedelta(seconds=1))
    authenticate_api_key(keys, clock, secret)
    # when
    clock.set(key.expires_at)
    # then
    with pytest.raises(UnauthorizedError, match="expired at 2026-05-02T09:00:00"):
        authenticate_api_key(keys, clock, secret)


def test_authenticate_api_key_refusals_do_not_record_a_use(keys, clock, admin, make_key):
    # given
    key, secret = make_key()
    revoke_api_key(keys, clock, admin, key.key_id)
    # when
    with pytest.raises(UnauthorizedError):
        authenticate_api_key(keys, clock, secret)
    # then
    assert keys.get("acme", key.key_id).last_used_at is None


# ------------------------------------------------------------------------------ list / revoke


def test_list_api_keys_pages_through_the_callers_tenant_only(keys, make_principal, make_key, admin):
    # given
    made = sorted(make_key(f"key {i}")[0].key_id for i in range(3))
    make_key(principal=make_principal(tenant_id="globex"))
    # when
    first = list_api_keys(keys, admin, limit=2, cursors=CURSORS)
    second = list_api_keys(keys, admin, limit=2, cursor=first.cursor, cursors=CURSORS)
    # then
    assert [k.key_id for k in first.items + second.items] == made
    assert second.cursor is None


def test_list_api_keys_needs_the_api_keys_authority(keys, make_principal):
    # when / then
    with pytest.raises(ForbiddenError, match="'api_keys' authority"):
        list_api_keys(keys, make_principal(Authority.HISTORY), cursors=CURSORS)


@pytest.mark.parametrize("limit", [0, 101], ids=["zero", "too-many"])
def test_list_api_keys_refuses_a_bad_limit(keys, admin, limit):
    # when / then
    with pytest.raises(InvalidInputError, match="limit"):
        list_api_keys(keys, admin, limit=limit, cursors=CURSORS)


def test_revoke_api_key_is_immediate_and_idempotent(keys, clock, admin, make_key):
    # given
    key, _ = make_key()
    clock.advance(60)
    # when
    first = revoke_api_key(keys, clock, admin, key.key_id)
    clock.advance(60)
    again = revoke_api_key(keys, clock, admin, key.key_id)
    # then
    assert first.revoked_at == NOW + timedelta(minutes=1)
    assert again == first == keys.get("acme", key.key_id)


@pytest.mark.parametrize("tenant", ["globex", "acme"], ids=["foreign-key", "unknown-key"])
def test_revoke_api_key_of_another_tenant_or_unknown_is_not_found(
    keys, clock, make_principal, make_key, tenant
):
    # given
    key, _ = make_key()
    caller = make_principal(tenant_id=tenant)
    key_id = key.key_id if tenant == "globex" else "nope"
    # when / then
    with pytest.raises(NotFoundError, match="does not exist"):
        revoke_api_key(keys, clock, caller, key_id)
    assert keys.get("acme", key.key_id).revoked_at is None


def test_revoke_api_key_needs_the_api_keys_authority(keys, clock, make_principal, make_key):
    # given
    key, _ = make_key()
    # when / then
    with pytest.raises(ForbiddenError):
        revoke_api_key(keys, clock, make_principal(Authority.HISTORY), key.key_id)
    assert keys.get("acme", key.key_id).revoked_at is None


def test_in_memory_api_keys_refuse_a_duplicate_hash(keys, make_key):
    # given
    key, _ = make_key()
    # when / then
    with pytest.raises(AlreadyExistsError):
        keys.add(dataclasses.replace(key, key_id="other"))


# -------------------------------------------------------------------------------------- audit


@pytest.fixture
def record(audit, clock) -> Callable[..., AuditEntry]:
    def write(
        action: str = "campaigns.create", actor: str = "user:alice", tenant_id: str = "acme", **extra: Any
    ) -> AuditEntry:
        return record_audit(
            audit,
            clock,
            tenant_id=tenant_id,
            actor=actor,
            action=action,
            target=extra.pop("target", "/v1/campaigns"),
            outcome=extra.pop("outcome", AuditOutcome.OK),
            retention=RETENTION,
            **extra,
        )

    return write


def test_record_audit_appends_an_entry_that_expires_after_the_retention(audit, admin, record):
    # when
    entry = record("keys.revoke", outcome=AuditOutcome.DENIED, detail="needs api_keys")
    # then
    assert entry == AuditEntry(
        "acme", entry.entry_id, NOW, "user:alice", "keys.revoke", "/v1/campaigns", AuditOutcome.DENIED,
        "needs api_keys", NOW + RETENTION,
    )  # fmt: skip
    assert len(entry.entry_id) == 32
    assert read_audit(audit, admin, cursors=CURSORS).items == (entry,)


def test_record_audit_gives_each_entry_its_own_id(record):
    # when
    ids = {record().entry_id for _ in range(3)}
    # then
    assert len(ids) == 3


def test_read_audit_needs_the_tenant_admin_authority(audit, make_principal, record):
    # given
    record()
    caller = make_principal(*(a for a in ALL_AUTHORITIES if a is not Authority.TENANT_ADMIN))
    # when / then
    with pytest.raises(ForbiddenError, match="'tenant_admin' authority"):
        read_audit(audit, caller, cursors=CURSORS)


def test_read_audit_reads_only_the_callers_tenant(audit, make_principal, record):
    # given
    ours = record()
    record(tenant_id="globex")
    record(tenant_id="-", actor="anonymous", outcome=AuditOutcome.UNAUTHENTICATED)
    # when
    page = read_audit(audit, make_principal(Authority.TENANT_ADMIN), cursors=CURSORS)
    # then
    assert page.items == (ours,)


def test_read_audit_lists_newest_first_page_by_page(audit, clock, admin, record):
    # given
    made = []
    for _ in range(5):
        made.append(record())
        clock.advance(1)
    # when
    pages = [read_audit(audit, admin, limit=2, cursors=CURSORS)]
    while pages[-1].cursor is not None:
        pages.append(read_audit(audit, admin, limit=2, cursor=pages[-1].cursor, cursors=CURSORS))
    # then
    assert [e for p in pages for e in p.items] == made[::-1]
    assert [len(p.items) for p in pages] == [2, 2, 1]


def test_read_audit_range_includes_since_and_excludes_until(audit, clock, admin, record):
    # given
    made = []
    for _ in range(4):
        made.append(record())
        clock.advance(60)
    # when
    page = read_audit(audit, admin, since=made[1].at, until=made[3].at, cursors=CURSORS)
    # then
    assert page.items == (made[2], made[1])


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"actor": "user:bob"}, [1, 3]),
        ({"action": "keys.create"}, [2, 3]),
        ({"actor": "user:bob", "action": "keys.create"}, [3]),
    ],
    ids=["actor", "action", "both"],
)
def test_read_audit_filters_by_actor_and_action(audit, clock, record, query, expected):
    # given
    made = []
    for who, what in [
        ("user:alice", "campaigns.create"),
        ("user:bob", "campaigns.create"),
        ("user:alice", "keys.create"),
        ("user:bob", "keys.create"),
    ]:
        made.append(record(what, who))
        clock.advance(1)
    # when
    page = read_audit(audit, ADMIN, **query, cursors=CURSORS)
    # then
    assert list(page.items) == [made[i] for i in reversed(expected)]


@pytest.mark.parametrize(
    "window",
    [
        {"since": NOW, "until": NOW},
        {"since": NOW + DAY, "until": NOW},
        {"since": datetime(2026, 5, 1, 9, 0)},  # naive: no timezone
        {"limit": 0},
        {"limit": 101},
        {"cursor": "not-a-cursor"},
    ],
    ids=["empty-range", "reversed-range", "naive-time", "zero-limit", "huge-limit", "bad-cursor"],
)
def test_read_audit_refuses_bad_queries(audit, admin, record, window):
    # given
    record()
    # when / then
    with pytest.raises(InvalidInputError):
        read_audit(audit, admin, **window, cursors=CURSORS)


def test_in_memory_audit_log_never_overwrites_an_entry(audit, admin, record):
    # given
    entry = record(detail="original")
    # when / then
    with pytest.raises(AlreadyExistsError, match="never overwritten"):
        audit.append(dataclasses.replace(entry, detail="forged"))
    assert read_audit(audit, admin, cursors=CURSORS).items == (entry,)


def test_audit_log_is_append_only():
    # then: neither the port nor the adapters offer a way to change or remove an entry
    for cls in (InMemoryAuditLog, AuditLog):
        public = {name for name in dir(cls) if not name.startswith("_")}
        assert public == {"append", "list"}
