"""DynamoDB adapter of :class:`~eventface.ports_access.MembershipDirectory`: ``<prefix>-memberships``.

Keyed by tenant and user sub, so the check made on every signed-in request is one strongly
consistent GetItem; the ``by_user`` GSI lists a user's tenants for operators. Only the platform
writes here (``eventface users``, the local stack); the management API only reads.
"""

from __future__ import annotations

from pynamodb.exceptions import PynamoDBException

from eventface.adapters.dynamo_models import MembershipItem
from eventface.adapters.dynamo_repositories import CONDITION_FAILED, DynamoTables, _code, _translate
from eventface.domain.access import Membership


def _from_item(item: MembershipItem) -> Membership:
    return Membership(
        tenant_id=item.tenant_id,
        user_sub=item.user_sub,
        username=item.username or "",
        granted_at=item.granted_at,
        granted_by=item.granted_by or "",
    )


class DynamoMembershipDirectory:
    """Tenant memberships in ``<prefix>-memberships`` (see :mod:`eventface.adapters.dynamo_models`)."""

    def __init__(self, tables: DynamoTables) -> None:
        self._tables = tables

    def get(self, tenant_id: str, user_sub: str) -> Membership | None:
        """The membership (strongly consistent GetItem), or None."""
        try:
            return _from_item(MembershipItem.get(tenant_id, user_sub, consistent_read=True))
        except MembershipItem.DoesNotExist:
            return None
        except PynamoDBException as exc:
            raise _translate(exc, "checking the user's tenant membership") from exc

    def grant(self, membership: Membership) -> Membership:
        """Put the membership if absent; an existing one is kept and returned."""
        item = MembershipItem(
            membership.tenant_id,
            membership.user_sub,
            username=membership.username,
            granted_at=membership.granted_at,
            granted_by=membership.granted_by,
        )
        try:
            item.save(condition=MembershipItem.user_sub.does_not_exist())
        except PynamoDBException as exc:
            if _code(exc) != CONDITION_FAILED:
                raise _translate(exc, "granting the membership") from exc
            existing = self.get(membership.tenant_id, membership.user_sub)
            return existing or membership
        return membership

    def revoke(self, tenant_id: str, user_sub: str) -> bool:
        """Delete the membership; whether it existed."""
        try:
            MembershipItem(tenant_id, user_sub).delete(condition=MembershipItem.user_sub.exists())
        except PynamoDBException as exc:
            if _code(exc) == CONDITION_FAILED:
                return False
            raise _translate(exc, "revoking the membership") from exc
        return True

    def of_user(self, user_sub: str) -> tuple[Membership, ...]:
        """The user's memberships by tenant id (GSI: eventually consistent)."""
        try:
            return tuple(_from_item(item) for item in MembershipItem.by_user.query(user_sub))
        except PynamoDBException as exc:
            raise _translate(exc, "listing the user's memberships") from exc
