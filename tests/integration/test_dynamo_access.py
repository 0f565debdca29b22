"""The DynamoDB adapters of management API keys and the audit log against moto in-process."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eventface import aws
from eventface.adapters.dynamo_access import DynamoApiKeyRepository, DynamoAuditLog
from eventface.adapters.dynamo_repositories import DynamoTables
from eventface.domain.access import ApiKey, AuditEntry, AuditOutcome, Authority
from eventface.domain.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from eventface.domain.model import Page

NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def tables(table_prefix: str) -> DynamoTables:
    """Fresh tables under a unique prefix, on moto in-process (see conftest)."""
    return DynamoTables(table_prefix)


@pytest.fixture
def keys(tables: DynamoTables) -> DynamoApiKeyRepository:
    return DynamoApiKeyRepository(tables)


@pytest.fixture
def audit(tables: DynamoTables) -> DynamoAuditLog:
    return DynamoAuditLog(tables)


@pytest.fixture
def make_key(keys: DynamoApiKeyRepository) -> Callable[..., ApiKey]:
    """Store a key (a fresh random secret unless one is given) and return it."""

    def make(tenant_id: str = "acme", key_id: str | None = None, **changes: Any) -> ApiKey:
        secret = changes.pop("secret", f"efk_{uuid.uuid4().hex}")
        key = ApiKey(
            tenant_id=tenant_id,
            key_id=key_id or uuid.uuid4().hex,
            name="crm sync",
            prefix=secret[:12],
            key_hash=hashlib.sha256(secret.encode()).hexdigest(),
            authorities=frozenset({Authority.HISTORY, Authority.TARGETS}),
            created_at=NOW,
            created_by="user:alice",
            expires_at=NOW + timedelta(days=30),
        )
        key = replace(key, **changes)
        keys.add(key)
        return key

    return make


@pytest.fixture
def make_entry(audit: DynamoAuditLog) -> Callable[..., AuditEntry]:
    """Append an entry ``minutes`` after NOW and return it."""

    def make(minutes: float = 0, **changes: Any) -> AuditEntry:
        at = NOW + timedelta(minutes=minutes)
        entry = AuditEntry(
            tenant_id="acme",
            entry_id=uuid.uuid4().hex,
            at=at,
            actor="user:alice",
            action="campaigns.create",
            target="/v1/campaigns",
            outcome=AuditOutcome.OK,
            detail="",
            expires_at=at + timedelta(days=400),
        )
        entry = replace(entry, **changes)
        audit.append(entry)
        return entry

    return make


def _all_pages(read: Callable[[str | None], Page[Any]]) -> list[Page[Any]]:
    """Every page of a listing, following cursors until there is none."""
    pages = [read(None)]
    while pages[-1].cursor is not None:
        pages.append(read(pages[-1].cursor))
    return pages


# -------------------------------------------------------------------------------------- API keys


def test_dynamo_api_key_round_trip_by_hash_and_id(keys, make_key):
    # given
    key = make_key(name="nightly export", last_used_at=NOW + timedelta(minutes=5))
    # when
    by_hash = keys.by_hash(key.key_hash)
    by_id = keys.get("acme", key.key_id)
    # then
    assert by_hash == key and by_id == key
    assert keys.by_hash(hashlib.sha256(b"efk_unknown").hexdigest()) is None


def test_dynamo_api_key_duplicate_hash_is_refused(keys, make_key):
    # given
    key = make_key()
    # when / then
    with pytest.raises(AlreadyExistsError, match="secret is taken"):
        keys.add(replace(key, tenant_id="globex", key_id="other", name="impostor"))
    assert keys.by_hash(key.key_hash) == key


def test_dynamo_api_key_of_another_tenant_is_not_found_like_an_unknown_one(keys, make_key):
    # given
    key = make_key(tenant_id="acme")
    # when
    with pytest.raises(NotFoundError) as foreign:
        keys.get("globex", key.key_id)
    with pytest.raises(NotFoundError) as unknown:
        keys.get("acme", "nope")
    # then: the answer never tells whether the id exists elsewhere
    assert str(foreign.value).replace(key.key_id, "ID") == str(unknown.value).replace("nope", "ID")


def test_dynamo_api_key_list_pages_through_one_tenant_by_id(keys, make_key):
    # given
    made = sorted(make_key(key_id=f"k{i}").key_id for i in range(5))
    make_key(tenant_id="globex", key_id="k9")
    # when
    pages = _all_pages(lambda cursor: keys.list("acme", limit=2, cursor=cursor))
    # then
    assert [k.key_id for p in pages for k in p.items] == made
    assert all(len(p.items) <= 2 for p in pages) and len(pages) >= 3
    assert keys.list("nobody").items == ()


def test_dynamo_api_key_revoke_is_stored_and_idempotent(keys, make_key):
    # given
    key = make_key()
    # when
    revoked = keys.revoke("acme", key.key_id, NOW + timedelta(hours=1))
    again = keys.revoke("acme", key.key_id, NOW + timedelta(hours=2))
    # then
    assert revoked == replace(key, revoked_at=NOW + timedelta(hours=1))
    assert again == revoked
    assert keys.by_hash(key.key_hash) == revoked


@pytest.mark.parametrize(
    ("tenant", "key_id"), [("globex", None), ("acme", "nope")], ids=["foreign", "unknown"]
)
def test_dynamo_api_key_revoke_of_a_foreign_or_unknown_key_is_not_found(keys, make_key, tenant, key_id):
    # given
    key = make_key(tenant_id="acme")
    # when / then
    with pytest.raises(NotFoundError, match="does not exist"):
        keys.revoke(tenant, key_id or key.key_id, NOW)
    assert keys.by_hash(key.key_hash) == key


def test_dynamo_api_key_touch_records_the_last_use(keys, make_key):
    # given
    key = make_key()
    # when
    keys.touch(key.key_hash, NOW + timedelta(minutes=3))
    # then
    assert keys.by_hash(key.key_hash) == replace(key, last_used_at=NOW + timedelta(minutes=3))


def test_dynamo_api_key_touch_of_an_unknown_key_creates_nothing(keys):
    # given
    unknown = hashlib.sha256(b"efk_unknown").hexdigest()
    # when
    keys.touch(unknown, NOW)
    # then
    assert keys.by_hash(unknown) is None


def test_dynamo_api_key_bad_cursor_is_invalid_input(keys):
    # when / then
    with pytest.raises(InvalidInputError, match="cursor"):
        keys.list("acme", cursor="not-a-cursor!")


# ----------------------------------------------------------------------------------------- audit


def test_dynamo_audit_round_trip_newest_first(audit, make_entry):
    # given
    made = [
        make_entry(0, outcome=AuditOutcome.DENIED, detail="needs campaigns"),
        make_entry(1, actor="anonymous", outcome=AuditOutcome.UNAUTHENTICATED, expires_at=None),
        make_entry(2, action="keys.revoke", target="/v1/api-keys/k1"),
    ]
    make_entry(3, tenant_id="globex")
    # when
    page = audit.list("acme")
    # then
    assert page.items == tuple(reversed(made))
    assert page.cursor is None


def test_dynamo_audit_entry_is_never_overwritten(audit, make_entry):
    # given
    entry = make_entry(detail="original")
    # when / then
    with pytest.raises(AlreadyExistsError, match="never overwritten"):
        audit.append(replace(entry, detail="forged", outcome=AuditOutcome.OK, actor="user:mallory"))
    assert audit.list("acme").items == (entry,)


def test_dynamo_audit_pages_newest_first(audit, make_entry):
    # given
    made = [make_entry(i) for i in range(5)]
    # when
    pages = _all_pages(lambda cursor: audit.list("acme", limit=2, cursor=cursor))
    # then
    assert [e for p in pages for e in p.items] == made[::-1]
    assert [len(p.items) for p in pages][:3] == [2, 2, 1]


def test_dynamo_audit_time_range_includes_since_and_excludes_until(audit, make_entry):
    # given
    made = [make_entry(i) for i in range(5)]
    # when
    both = audit.list("acme", since=made[1].at, until=made[3].at)
    since_only = audit.list("acme", since=made[3].at)
    until_only = audit.list("acme", until=made[1].at)
    # then
    assert both.items == (made[2], made[1])
    assert since_only.items == (made[4], made[3])
    assert until_only.items == (made[0],)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"actor": "user:bob"}, [1, 3, 5]),
        ({"action": "keys.create"}, [2, 3]),
        ({"actor": "user:bob", "action": "keys.create"}, [3]),
        ({"actor": "user:bob", "since": NOW + timedelta(minutes=2)}, [3, 5]),
    ],
    ids=["actor", "action", "both", "actor-and-range"],
)
def test_dynamo_audit_filters_by_actor_and_action(audit, make_entry, query, expected):
    # given
    made = [
        make_entry(i, actor=actor, action=action)
        for i, (actor, action) in enumerate(
            [
                ("user:alice", "campaigns.create"),
                ("user:bob", "campaigns.create"),
                ("user:alice", "keys.create"),
                ("user:bob", "keys.create"),
                ("user:alice", "history.read"),
                ("user:bob", "history.read"),
            ]
        )
    ]
    # when
    page = audit.list("acme", **query)
    # then
    assert list(page.items) == [made[i] for i in reversed(expected)]


def test_dynamo_audit_filtered_pages_are_full_until_the_end(audit, make_entry):
    # given: bob's entries interleaved with alice's, so filtering skips items inside each page
    made = [make_entry(i, actor="user:bob" if i % 2 else "user:alice") for i in range(10)]
    bobs = [e for e in made if e.actor == "user:bob"][::-1]
    # when
    pages = _all_pages(lambda cursor: audit.list("acme", actor="user:bob", limit=2, cursor=cursor))
    # then
    assert [e for p in pages for e in p.items] == bobs
    assert [len(p.items) for p in pages][:3] == [2, 2, 1]


def test_dynamo_audit_reversed_range_is_invalid_input(audit):
    # when / then
    with pytest.raises(InvalidInputError, match="since must not be after until"):
        audit.list("acme", since=NOW + timedelta(hours=1), until=NOW)


def test_dynamo_audit_is_append_only():
    # then: the adapter offers no way to change or remove an entry
    assert {name for name in dir(DynamoAuditLog) if not name.startswith("_")} == {"append", "list"}


def test_dynamo_audit_table_expires_entries_by_ttl(tables):
    # when
    described = aws.client("dynamodb").describe_time_to_live(TableName=f"{tables.prefix}-audit")
    # then
    assert described["TimeToLiveDescription"] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}
