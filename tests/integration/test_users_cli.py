"""``eventface users``: operators create a tenant's users and grant or revoke memberships, on moto
(Cognito and DynamoDB in-process), exactly as against a deployment."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from eventface import aws
from eventface.adapters.dynamo_memberships import DynamoMembershipDirectory
from eventface.adapters.dynamo_repositories import DynamoTables
from eventface.cli import main
from eventface.local.cognito import UserPool, create_user, create_user_pool


@pytest.fixture
def pool(table_prefix: str, monkeypatch: pytest.MonkeyPatch) -> UserPool:
    """A user pool like the local stack's, and the environment the CLI reads."""
    created = create_user_pool(f"p{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("EVENTFACE_TABLE_PREFIX", table_prefix)
    monkeypatch.setenv("EVENTFACE_USER_POOL_ID", created.pool_id)
    return created


@pytest.fixture
def memberships(table_prefix: str) -> DynamoMembershipDirectory:
    return DynamoMembershipDirectory(DynamoTables(table_prefix))


def _cognito_user(pool: UserPool, username: str) -> dict[str, Any]:
    found: dict[str, Any] = aws.client("cognito-idp").admin_get_user(
        UserPoolId=pool.pool_id, Username=username
    )
    found["attributes"] = {a["Name"]: a["Value"] for a in found["UserAttributes"]}
    groups = aws.client("cognito-idp").admin_list_groups_for_user(UserPoolId=pool.pool_id, Username=username)
    found["groups"] = sorted(g["GroupName"] for g in groups["Groups"])
    return found


def test_users_add_creates_the_cognito_user_of_the_tenant_and_records_the_membership(
    pool: UserPool, memberships: DynamoMembershipDirectory, capsys: pytest.CaptureFixture[str]
) -> None:
    # when
    code = main(["users", "add", "--tenant", "acme", "--username", "carol", "--email", "carol@example.com",
                 "--authority", "history", "--authority", "targets", "--by", "ops-anna"])  # fmt: skip
    # then: an invited Cognito user whose tenant attribute is set, in the groups of the authorities
    assert code == 0, capsys.readouterr().err
    user = _cognito_user(pool, "carol")
    assert user["attributes"]["custom:tenant_id"] == "acme"
    assert user["groups"] == ["history", "targets"]
    assert user["UserStatus"] == "FORCE_CHANGE_PASSWORD"  # Cognito e-mailed a temporary password
    # and: the platform's record of the membership, by the user's sub
    membership = memberships.get("acme", user["attributes"]["sub"])
    assert membership is not None and (membership.username, membership.granted_by) == ("carol", "ops-anna")
    assert "created user carol" in capsys.readouterr().out


def test_users_add_refuses_a_taken_username_with_exit_code_2(
    pool: UserPool, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    assert main(["users", "add", "--tenant", "acme", "--username", "carol", "--email", "c@example.com"]) == 0
    # when
    code = main(["users", "add", "--tenant", "other", "--username", "carol", "--email", "c@example.com"])
    # then
    assert code == 2 and "username is taken" in capsys.readouterr().err
    assert _cognito_user(pool, "carol")["attributes"]["custom:tenant_id"] == "acme"


def test_users_grant_records_a_user_created_for_the_tenant_and_refuses_another_tenant(
    pool: UserPool, memberships: DynamoMembershipDirectory, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: a Cognito user of "acme" created without a membership (e.g. before memberships existed)
    create_user(pool, "dave", "Corr3ct-horse!", attributes={"custom:tenant_id": "acme"})
    sub = _cognito_user(pool, "dave")["attributes"]["sub"]
    # when
    other = main(["users", "grant", "--tenant", "victim", "--username", "dave"])
    refusal = capsys.readouterr().err
    granted = main(["users", "grant", "--tenant", "acme", "--username", "dave"])
    shown = main(["users", "show", "--username", "dave"])
    # then
    assert other == 2 and "immutable" in refusal
    assert memberships.get("victim", sub) is None
    assert (granted, shown) == (0, 0)
    assert memberships.get("acme", sub) is not None
    assert f"acme\tdave\t{sub}" in capsys.readouterr().out


def test_users_revoke_removes_the_membership(
    pool: UserPool, memberships: DynamoMembershipDirectory, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    assert main(["users", "add", "--tenant", "acme", "--username", "carol", "--email", "c@example.com"]) == 0
    sub = _cognito_user(pool, "carol")["attributes"]["sub"]
    # when
    code = main(["users", "revoke", "--tenant", "acme", "--username", "carol"])
    # then
    assert code == 0 and "revoked" in capsys.readouterr().out
    assert memberships.get("acme", sub) is None


def test_users_commands_name_the_missing_setting(
    table_prefix: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: no user pool configured
    monkeypatch.setenv("EVENTFACE_TABLE_PREFIX", table_prefix)
    monkeypatch.delenv("EVENTFACE_USER_POOL_ID", raising=False)
    # when
    code = main(["users", "grant", "--tenant", "acme", "--username", "dave"])
    # then
    assert code == 2 and "EVENTFACE_USER_POOL_ID" in capsys.readouterr().err
