"""Which tenant a signed-in user belongs to: the platform's membership records.

A user's tenant is what the platform recorded when it created the user, never what the user (or
their token) says. The identity provider's ``custom:tenant_id`` is set once by the platform
(immutable in the pool, writable by no app client), and the management API cross-checks it against
the membership record on every request (:func:`check_membership`): a token that names a tenant
the user is not a member of is refused with 403 and audited, whatever the pool lets a user do.

Memberships are written only here, by the platform: :func:`add_user` (operators' ``eventface
users add``, the local stack's demo users), :func:`grant_membership` and :func:`revoke_membership`
(``eventface users grant`` / ``revoke``). There is no API route that writes one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from eventface.domain.access import (
    TENANT_ID_PATTERN,
    Authority,
    Membership,
    Principal,
    valid_tenant_id,
)
from eventface.domain.errors import InvalidInputError, NotAMemberError, StateConflictError
from eventface.ports_access import MembershipDirectory
from eventface.services.deps import Deps

#: The tenant of audit entries whose token named no well-formed tenant.
NO_TENANT: Final = "-"
MAX_USERNAME_LENGTH: Final = 128


@dataclass(frozen=True, slots=True)
class NewUser:
    """A user the platform creates for a tenant.

    ``password`` sets a permanent password (local stack and tests only); without it the identity
    provider e-mails ``email`` an invitation with a temporary password.
    """

    tenant_id: str
    username: str
    authorities: frozenset[Authority] = frozenset()
    email: str | None = None
    password: str | None = None
    granted_by: str = ""


def check_membership(memberships: MembershipDirectory, principal: Principal) -> None:
    """NotAMemberError unless the signed-in ``principal`` is a member of the tenant it claims.

    Parameters
    ----------
    memberships
        The platform's records (cached per container: a revocation applies within the cache's TTL).
    principal
        A user, its tenant taken from the token's claim.

    Raises
    ------
    NotAMemberError
        No membership of that tenant (the claim was changed, or the membership was revoked); it
        carries the principal so the refusal is audited under the user's sub.
    """
    if not valid_tenant_id(principal.tenant_id):
        raise NotAMemberError(
            "your sign-in names a tenant that is not a valid tenant id: your user was not created by "
            "this platform; ask the platform operator for a user of your tenant",
            principal=_with_tenant(principal, NO_TENANT),
        )
    if memberships.get(principal.tenant_id, principal.principal_id) is None:
        raise NotAMemberError(
            f"your user is not a member of tenant '{principal.tenant_id}' (the platform's membership "
            "records decide a user's tenant, not the sign-in token): ask the platform operator to "
            "grant the membership, then sign in again",
            principal=principal,
        )


def _with_tenant(principal: Principal, tenant_id: str) -> Principal:
    return Principal(
        tenant_id=tenant_id,
        kind=principal.kind,
        principal_id=principal.principal_id,
        authorities=principal.authorities,
        name=principal.name,
    )


def _check_tenant(tenant_id: str) -> None:
    if not valid_tenant_id(tenant_id):
        raise InvalidInputError(
            f"tenant id {tenant_id[:70]!r} is not valid: use 1-64 letters, digits, '_' or '-' "
            f"(pattern {TENANT_ID_PATTERN.pattern}), starting with a letter or digit"
        )


def _check_username(username: str) -> None:
    if not username.strip() or len(username) > MAX_USERNAME_LENGTH or not username.isprintable():
        raise InvalidInputError(
            f"the username must be 1-{MAX_USERNAME_LENGTH} printable characters: give another one"
        )


def add_user(deps: Deps, user: NewUser) -> Membership:
    """Create the user in the identity provider (tenant attribute, groups) and record the membership.

    Returns
    -------
    Membership
        The recorded membership (``user_sub`` names the new user).

    Raises
    ------
    InvalidInputError
        A malformed tenant id or username, or a value the identity provider refuses.
    AlreadyExistsError
        The username is taken (nothing was changed).
    """
    _check_tenant(user.tenant_id)
    _check_username(user.username)
    created = deps.users.create(
        user.username,
        tenant_id=user.tenant_id,
        groups=sorted(a.value for a in user.authorities),
        email=user.email,
        password=user.password,
    )
    return deps.memberships.grant(
        Membership(
            tenant_id=user.tenant_id,
            user_sub=created.sub,
            username=created.username,
            granted_at=deps.clock.now(),
            granted_by=user.granted_by,
        )
    )


def grant_membership(deps: Deps, tenant_id: str, username: str, granted_by: str = "") -> Membership:
    """Record an existing user's membership of the tenant their tenant attribute names.

    Raises
    ------
    NotFoundError
        The identity provider has no such user.
    StateConflictError
        The user's tenant attribute names another tenant, or none (the attribute is immutable: a
        user of another tenant needs a new user).
    """
    _check_tenant(tenant_id)
    _check_username(username)
    user = deps.users.get(username)
    if user.tenant_id != tenant_id:
        raise StateConflictError(
            f"user {username} was created for {_tenant_text(user.tenant_id)}, not '{tenant_id}': the "
            "tenant attribute is immutable, so create a new user for this tenant (eventface users add)"
        )
    return deps.memberships.grant(
        Membership(
            tenant_id=tenant_id,
            user_sub=user.sub,
            username=user.username,
            granted_at=deps.clock.now(),
            granted_by=granted_by,
        )
    )


def revoke_membership(deps: Deps, tenant_id: str, username: str) -> bool:
    """Remove the user's membership of the tenant and sign them out everywhere.

    Their refresh tokens stop at once; an ID token they still hold is refused within the membership
    cache's TTL (``EVENTFACE_MEMBERSHIP_CACHE_SECONDS``). Returns whether there was a membership.
    """
    _check_tenant(tenant_id)
    _check_username(username)
    user = deps.users.get(username)
    removed = deps.memberships.revoke(tenant_id, user.sub)
    deps.users.sign_out(username)
    return removed


def memberships_of(deps: Deps, username: str) -> tuple[Membership, ...]:
    """The user's memberships (operators: which tenants is this user in?)."""
    _check_username(username)
    return deps.memberships.of_user(deps.users.get(username).sub)


def _tenant_text(tenant_id: str | None) -> str:
    return f"tenant '{tenant_id}'" if tenant_id else "no tenant"
