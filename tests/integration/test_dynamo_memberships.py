"""The DynamoDB membership directory (``<prefix>-memberships``) against moto in-process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from eventface.adapters.dynamo_memberships import DynamoMembershipDirectory
from eventface.adapters.dynamo_repositories import DynamoTables
from eventface.domain.access import Membership

NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def directory(table_prefix: str) -> DynamoMembershipDirectory:
    return DynamoMembershipDirectory(DynamoTables(table_prefix))


def test_dynamo_memberships_grant_then_get_by_tenant_and_sub(directory: DynamoMembershipDirectory) -> None:
    # given
    membership = Membership("acme", "sub-1", "carol", NOW, "ops")
    # when
    stored = directory.grant(membership)
    # then
    assert stored == membership
    assert directory.get("acme", "sub-1") == membership
    assert directory.get("other", "sub-1") is None
    assert directory.get("acme", "sub-2") is None


def test_dynamo_memberships_grant_is_idempotent_and_keeps_the_first_grant(
    directory: DynamoMembershipDirectory,
) -> None:
    # given
    first = directory.grant(Membership("acme", "sub-1", "carol", NOW, "ops"))
    # when
    again = directory.grant(Membership("acme", "sub-1", "carol", NOW + timedelta(days=1), "someone"))
    # then
    assert again == first == directory.get("acme", "sub-1")


def test_dynamo_memberships_revoke_removes_it_once(directory: DynamoMembershipDirectory) -> None:
    # given
    directory.grant(Membership("acme", "sub-1", "carol", NOW))
    # when
    first, again = directory.revoke("acme", "sub-1"), directory.revoke("acme", "sub-1")
    # then
    assert (first, again) == (True, False)
    assert directory.get("acme", "sub-1") is None


def test_dynamo_memberships_of_a_user_by_tenant(directory: DynamoMembershipDirectory) -> None:
    # given
    for tenant in ("zeta", "acme"):
        directory.grant(Membership(tenant, "sub-1", "carol", NOW))
    directory.grant(Membership("acme", "sub-2", "dave", NOW))
    # when
    found = directory.of_user("sub-1")
    # then
    assert [m.tenant_id for m in found] == ["acme", "zeta"]
    assert directory.of_user("sub-3") == ()
