"""Tenant membership: the platform's record decides a signed-in user's tenant, the token's claim is
only cross-checked (eventface.services.memberships, the membership cache, services.auth)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from eventface.adapters.membership_cache import CachedMembershipDirectory
from eventface.adapters.memory import FixedClock, in_memory_ports
from eventface.adapters.memory_access import StaticClaims, StaticTokenVerifier
from eventface.adapters.memory_memberships import InMemoryMembershipDirectory, InMemoryUserDirectory
from eventface.adapters.read_cache import TtlCache
from eventface.bootstrap import Services, bootstrap
from eventface.domain.access import Authority, Membership, Principal, PrincipalKind
from eventface.domain.errors import (
    AlreadyExistsError,
    InvalidInputError,
    NotAMemberError,
    NotFoundError,
    StateConflictError,
)
from eventface.services.memberships import NewUser, check_membership
from eventface.settings import Settings

NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
TTL = 60.0


class Ticker:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _member(tenant: str = "acme", sub: str = "sub-1") -> Membership:
    return Membership(tenant, sub, "carol", NOW, granted_by="test")


def _user(tenant: str = "acme", sub: str = "sub-1") -> Principal:
    return Principal(tenant, PrincipalKind.USER, sub, frozenset({Authority.HISTORY}), "carol")


@pytest.fixture
def platform() -> tuple[Services, InMemoryMembershipDirectory, InMemoryUserDirectory, StaticTokenVerifier]:
    memberships, users, tokens = InMemoryMembershipDirectory(), InMemoryUserDirectory(), StaticTokenVerifier()
    services = bootstrap(
        Settings({}),
        **in_memory_ports(clock=FixedClock(NOW), memberships=memberships, users=users, tokens=tokens),
    )
    return services, memberships, users, tokens


# --------------------------------------------------------------------------- the check itself


def test_check_membership_admits_a_member_of_the_tenant_their_token_names() -> None:
    # given
    memberships = InMemoryMembershipDirectory([_member()])
    # when / then: no error
    check_membership(memberships, _user())


@pytest.mark.parametrize("recorded", [(), (_member("other"),)], ids=["no-membership", "another-tenant"])
def test_check_membership_refuses_a_tenant_the_user_is_not_a_member_of(recorded: Any) -> None:
    # given: the token claims "acme"; the platform records the user nowhere, or in "other"
    memberships = InMemoryMembershipDirectory(recorded)
    # when
    with pytest.raises(NotAMemberError) as refused:
        check_membership(memberships, _user("acme"))
    # then: 403 naming the claimed tenant and what to do; the user is kept for the audit entry
    assert "not a member of tenant 'acme'" in str(refused.value)
    assert "ask the platform operator" in str(refused.value)
    assert refused.value.principal.actor == "user:sub-1"
    assert refused.value.principal.tenant_id == "acme"


@pytest.mark.parametrize("claim", ["acme#other", "", "a" * 65, "../acme", "acme\n"])
def test_check_membership_refuses_a_malformed_tenant_claim_without_a_lookup(claim: str) -> None:
    # given
    memberships = InMemoryMembershipDirectory([_member()])
    # when
    with pytest.raises(NotAMemberError, match="not a valid tenant id") as refused:
        check_membership(memberships, _user(claim))
    # then: the claim never reaches the directory or the audit log's partition key
    assert memberships.reads == 0
    assert refused.value.principal.tenant_id == "-"


def test_authenticate_admits_a_member_with_the_tenant_and_groups_of_their_token(platform) -> None:
    # given
    services, memberships, _, tokens = platform
    tokens.tokens["t"] = StaticClaims("sub-1", "carol", ("history",), {"custom:tenant_id": "acme"})
    memberships.grant(_member())
    # when
    principal = services.authenticate({"authorization": "Bearer t"})
    # then
    assert (principal.tenant_id, principal.principal_id, principal.authorities) == (
        "acme",
        "sub-1",
        frozenset({Authority.HISTORY}),
    )


def test_authenticate_refuses_a_valid_token_whose_tenant_claim_was_rewritten(platform) -> None:
    # given: a member of "acme" whose (valid, signed) token now claims "victim"
    services, memberships, _, tokens = platform
    memberships.grant(_member("acme"))
    tokens.tokens["moved"] = StaticClaims("sub-1", "carol", ("history",), {"custom:tenant_id": "victim"})
    # when / then
    with pytest.raises(NotAMemberError, match="not a member of tenant 'victim'"):
        services.authenticate({"authorization": "Bearer moved"})


# --------------------------------------------------------------------------------- the cache


@pytest.fixture
def cached() -> tuple[InMemoryMembershipDirectory, CachedMembershipDirectory, Ticker]:
    inner, ticker = InMemoryMembershipDirectory([_member()]), Ticker()
    return inner, CachedMembershipDirectory(inner, TtlCache(TTL, ticker)), ticker


def test_cached_memberships_serve_repeat_checks_within_the_ttl(cached) -> None:
    # given
    inner, directory, ticker = cached
    # when
    for t in (0.0, 10.0, TTL - 0.001):
        ticker.t = t
        check_membership(directory, _user())
    # then
    assert inner.reads == 1


def test_cached_memberships_a_revocation_elsewhere_applies_within_the_ttl(cached) -> None:
    # given: a member checked once; then another container (the CLI) revokes the membership
    inner, directory, ticker = cached
    check_membership(directory, _user())
    inner.revoke("acme", "sub-1")
    # when / then: still admitted until the cached answer is TTL seconds old, refused from then on
    ticker.t = TTL - 0.001
    check_membership(directory, _user())
    ticker.t = TTL
    with pytest.raises(NotAMemberError):
        check_membership(directory, _user())


def test_cached_memberships_a_grant_elsewhere_applies_within_the_ttl(cached) -> None:
    # given: a refused check is cached too (a flood of refused tokens is one read a minute)
    inner, directory, ticker = cached
    with pytest.raises(NotAMemberError):
        check_membership(directory, _user(sub="sub-2"))
    inner.grant(_member(sub="sub-2"))
    # when / then
    ticker.t = TTL - 0.001
    with pytest.raises(NotAMemberError):
        check_membership(directory, _user(sub="sub-2"))
    ticker.t = TTL
    check_membership(directory, _user(sub="sub-2"))
    assert inner.reads == 2


def test_cached_memberships_writes_through_the_wrapper_apply_at_once(cached) -> None:
    # given
    _, directory, _ = cached
    check_membership(directory, _user())
    # when
    revoked = directory.revoke("acme", "sub-1")
    # then
    assert revoked is True
    with pytest.raises(NotAMemberError):
        check_membership(directory, _user())
    directory.grant(_member())
    check_membership(directory, _user())


# ------------------------------------------------------------------ the platform writes them


def test_add_user_creates_the_provider_user_with_its_tenant_and_groups_and_records_the_membership(
    platform,
) -> None:
    # given
    services, memberships, users, _ = platform
    # when
    membership = services.add_user(
        NewUser(
            "acme",
            "carol",
            frozenset({Authority.HISTORY, Authority.TARGETS}),
            email="c@example.com",
            granted_by="ops",
        )
    )
    # then
    created = users.get("carol")
    assert (created.tenant_id, users.groups["carol"], users.passwords["carol"]) == (
        "acme",
        {"history", "targets"},
        None,
    )
    assert membership == Membership("acme", created.sub, "carol", NOW, "ops")
    assert memberships.get("acme", created.sub) == membership


@pytest.mark.parametrize("tenant", ["", "acme#b", "-acme", "a b"])
def test_add_user_refuses_a_malformed_tenant_before_creating_anything(platform, tenant: str) -> None:
    # given
    services, _, users, _ = platform
    # when / then
    with pytest.raises(InvalidInputError, match="tenant id"):
        services.add_user(NewUser(tenant, "carol", email="c@example.com"))
    assert users.users == {}


def test_add_user_refuses_a_taken_username(platform) -> None:
    # given
    services, _, _, _ = platform
    services.add_user(NewUser("acme", "carol", email="c@example.com"))
    # when / then
    with pytest.raises(AlreadyExistsError, match="carol"):
        services.add_user(NewUser("other", "carol", email="c@example.com"))


def test_grant_membership_records_an_existing_user_of_the_tenant(platform) -> None:
    # given: a user created for "acme" by hand, without a membership
    services, memberships, users, _ = platform
    user = users.create("dave", tenant_id="acme", email="d@example.com")
    # when
    membership = services.grant_membership("acme", "dave", "ops")
    # then
    assert memberships.get("acme", user.sub) == membership
    assert services.memberships_of("dave") == (membership,)


def test_grant_membership_refuses_a_user_created_for_another_tenant(platform) -> None:
    # given
    services, memberships, users, _ = platform
    user = users.create("dave", tenant_id="acme", email="d@example.com")
    # when / then: the tenant attribute is immutable: a new user is the way
    with pytest.raises(StateConflictError, match="created for tenant 'acme', not 'victim'"):
        services.grant_membership("victim", "dave")
    assert memberships.of_user(user.sub) == ()


def test_grant_membership_of_an_unknown_user_is_not_found(platform) -> None:
    with pytest.raises(NotFoundError, match="nobody"):
        platform[0].grant_membership("acme", "nobody")


def test_revoke_membership_removes_it_and_signs_the_user_out(platform) -> None:
    # given
    services, memberships, users, _ = platform
    membership = services.add_user(NewUser("acme", "carol", email="c@example.com"))
    # when
    first, again = services.revoke_membership("acme", "carol"), services.revoke_membership("acme", "carol")
    # then
    assert (first, again) == (True, False)
    assert memberships.get("acme", membership.user_sub) is None
    assert users.signed_out == ["carol", "carol"]
