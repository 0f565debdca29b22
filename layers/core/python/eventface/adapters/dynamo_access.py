"""DynamoDB adapters of the access-control ports: management API keys and the audit log.

API keys are keyed by the SHA-256 of their secret, so authentication is one strongly consistent
GetItem; the ``by_tenant`` GSI reaches a key by id (eventually consistent, like every GSI). The
audit log is append-only: entries are written with a conditional put and there is no update or
delete here (TTL removes entries after the retention period).
"""

from __future__ import annotations

import functools
import operator
from datetime import datetime
from typing import Any

from pynamodb.exceptions import PynamoDBException

from eventface.adapters.dynamo_models import ApiKeyItem, AuditItem
from eventface.adapters.dynamo_repositories import (
    CONDITION_FAILED,
    DynamoTables,
    _code,
    _time_key,
    _translate,
    audit_item,
    bounded_query,
    decode_cursor,
    encode_cursor,
    examine_budget,
)
from eventface.domain.access import ApiKey, AuditEntry, AuditOutcome, Authority
from eventface.domain.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from eventface.domain.model import Page


def _not_found(key_id: str) -> NotFoundError:
    return NotFoundError(f"API key {key_id} does not exist: check the id (list the keys to find it)")


# -------------------------------------------------------------------------------------- API keys


def _key_to_item(key: ApiKey) -> ApiKeyItem:
    return ApiKeyItem(
        key.key_hash,
        tenant_id=key.tenant_id,
        key_id=key.key_id,
        name=key.name,
        prefix=key.prefix,
        authorities={a.value for a in key.authorities},
        created_at=key.created_at,
        created_by=key.created_by,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        last_used_at=key.last_used_at,
    )


def _key_from_item(item: ApiKeyItem) -> ApiKey:
    known = {a.value for a in Authority}
    return ApiKey(
        tenant_id=item.tenant_id,
        key_id=item.key_id,
        name=item.name,
        prefix=item.prefix,
        key_hash=item.key_hash,
        # An authority retired from the code grants nothing, rather than failing every request.
        authorities=frozenset(Authority(a) for a in (item.authorities or set()) if a in known),
        created_at=item.created_at,
        created_by=item.created_by,
        expires_at=item.expires_at,
        revoked_at=item.revoked_at,
        last_used_at=item.last_used_at,
    )


class DynamoApiKeyRepository:
    """Management API keys in ``<prefix>-api_keys`` (see :mod:`eventface.adapters.dynamo_models`)."""

    def __init__(self, tables: DynamoTables) -> None:
        self._tables = tables

    def add(self, key: ApiKey) -> None:
        """Store a new key; AlreadyExistsError if its hash is taken."""
        if not key.authorities:
            # DynamoDB refuses empty sets; a key that grants nothing is refused by the service too.
            raise InvalidInputError("an API key must grant at least one authority")
        try:
            _key_to_item(key).save(condition=ApiKeyItem.key_hash.does_not_exist())
        except PynamoDBException as exc:
            if _code(exc) == CONDITION_FAILED:
                raise AlreadyExistsError("this API key secret is taken: create the key again") from exc
            raise _translate(exc, "creating the API key") from exc

    def by_hash(self, key_hash: str) -> ApiKey | None:
        """The key with this hash (strongly consistent GetItem), or None."""
        try:
            return _key_from_item(ApiKeyItem.get(key_hash, consistent_read=True))
        except ApiKeyItem.DoesNotExist:
            return None
        except PynamoDBException as exc:
            raise _translate(exc, "authenticating the API key") from exc

    @staticmethod
    def _item(tenant_id: str, key_id: str) -> ApiKeyItem:
        # The GSI is partitioned by tenant: another tenant's key is simply not found here.
        try:
            found = list(ApiKeyItem.by_tenant.query(tenant_id, ApiKeyItem.key_id == key_id, limit=1))
        except PynamoDBException as exc:
            raise _translate(exc, "reading the API key") from exc
        if not found:
            raise _not_found(key_id)
        return found[0]

    def get(self, tenant_id: str, key_id: str) -> ApiKey:
        """The tenant's key; NotFoundError if unknown or another tenant's."""
        return _key_from_item(self._item(tenant_id, key_id))

    def list(self, tenant_id: str, limit: int = 50, cursor: str | None = None) -> Page[ApiKey]:
        """The tenant's keys by id (revoked and expired ones included)."""
        try:
            result = ApiKeyItem.by_tenant.query(
                tenant_id, limit=limit, last_evaluated_key=decode_cursor(cursor)
            )
            items = tuple(_key_from_item(i) for i in result)
        except PynamoDBException as exc:
            raise _translate(exc, "listing the API keys") from exc
        return Page(items, encode_cursor(result.last_evaluated_key))

    def revoke(self, tenant_id: str, key_id: str, at: datetime) -> ApiKey:
        """Revoke the key at ``at``; an already revoked key keeps its first revocation time."""
        item = self._item(tenant_id, key_id)
        if item.revoked_at is not None:
            return _key_from_item(item)
        try:
            item.update(
                actions=[ApiKeyItem.revoked_at.set(at)],
                condition=ApiKeyItem.key_hash.exists()
                & (ApiKeyItem.tenant_id == tenant_id)
                & ApiKeyItem.revoked_at.does_not_exist(),
            )
        except PynamoDBException as exc:
            if _code(exc) != CONDITION_FAILED:
                raise _translate(exc, "revoking the API key") from exc
            # Revoked meanwhile (a concurrent request, or the GSI was behind): report the stored state.
            current = self.by_hash(item.key_hash)
            if current is None or current.tenant_id != tenant_id:
                raise _not_found(key_id) from exc
            return current
        return _key_from_item(item)

    def touch(self, key_hash: str, at: datetime) -> None:
        """Set ``last_used_at``; a key deleted meanwhile is ignored, other failures DependencyError."""
        try:
            ApiKeyItem(key_hash).update(
                actions=[ApiKeyItem.last_used_at.set(at)], condition=ApiKeyItem.key_hash.exists()
            )
        except PynamoDBException as exc:
            if _code(exc) == CONDITION_FAILED:
                return
            raise _translate(exc, "recording the API key's use") from exc


# ----------------------------------------------------------------------------------------- audit


def _entry_from_item(item: AuditItem) -> AuditEntry:
    return AuditEntry(
        tenant_id=item.tenant_id,
        entry_id=item.entry_id,
        at=item.at,
        actor=item.actor,
        action=item.action,
        target=item.target,
        outcome=AuditOutcome(item.outcome),
        detail=item.detail or "",
        expires_at=item.expires,
    )


class DynamoAuditLog:
    """The append-only audit log in ``<prefix>-audit``: one partition per tenant, newest first."""

    def __init__(self, tables: DynamoTables) -> None:
        self._tables = tables

    def append(self, entry: AuditEntry) -> None:
        """Add an entry; AlreadyExistsError if its key is taken (an entry is never overwritten)."""
        item = audit_item(entry)
        try:
            item.save(condition=AuditItem.sk.does_not_exist())
        except PynamoDBException as exc:
            if _code(exc) == CONDITION_FAILED:
                raise AlreadyExistsError(
                    f"audit entry {entry.entry_id} exists already: audit entries are never overwritten"
                ) from exc
            raise _translate(exc, "writing the audit entry") from exc

    def list(
        self,
        tenant_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[AuditEntry]:
        """The tenant's entries, newest first; ``since`` inclusive, ``until`` exclusive.

        The time range is a key condition (only the range is read); ``actor`` and ``action`` are
        filter conditions: DynamoDB examines at most :func:`examine_budget` entries for them, so
        a filtered page may be short, even empty, and still have a cursor to go on.
        """
        if since is not None and until is not None and since > until:
            raise InvalidInputError("since must not be after until: swap them or widen the range")
        low = _time_key(since) if since is not None else None
        # "<until>" sorts before every "<until>#<id>": entries at exactly ``until`` are left out.
        high = _time_key(until) if until is not None else None
        range_condition: Any
        if low is not None and high is not None:
            range_condition = AuditItem.sk.between(low, high)
        elif low is not None:
            range_condition = AuditItem.sk >= low
        elif high is not None:
            range_condition = AuditItem.sk < high
        else:
            range_condition = None
        filters = [
            attribute == value
            for attribute, value in ((AuditItem.actor, actor), (AuditItem.action, action))
            if value is not None
        ]
        budget = examine_budget(limit) if filters else limit
        try:
            result = AuditItem.query(
                tenant_id,
                range_key_condition=range_condition,
                filter_condition=functools.reduce(operator.and_, filters) if filters else None,
                scan_index_forward=False,
                page_size=budget,
                last_evaluated_key=decode_cursor(cursor),
            )
            found, position = bounded_query(AuditItem, result, limit=limit, budget=budget)
        except PynamoDBException as exc:
            raise _translate(exc, "reading the audit log") from exc
        return Page(tuple(_entry_from_item(i) for i in found), encode_cursor(position))
