"""In-memory adapters of the membership and user-directory ports: for unit tests and the offline demo.

Same contracts as :mod:`eventface.adapters.dynamo_memberships` and
:mod:`eventface.adapters.cognito_users`, behind one lock each. Not for production.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Collection

from eventface.domain.access import DirectoryUser, Membership
from eventface.domain.errors import AlreadyExistsError, InvalidInputError, NotFoundError


class InMemoryMembershipDirectory:
    def __init__(self, memberships: Collection[Membership] = ()) -> None:
        self._items: dict[tuple[str, str], Membership] = {(m.tenant_id, m.user_sub): m for m in memberships}
        self._lock = threading.Lock()
        #: How many times ``get`` was asked (tests of the cache count reads).
        self.reads = 0

    def get(self, tenant_id: str, user_sub: str) -> Membership | None:
        with self._lock:
            self.reads += 1
            return self._items.get((tenant_id, user_sub))

    def grant(self, membership: Membership) -> Membership:
        with self._lock:
            return self._items.setdefault((membership.tenant_id, membership.user_sub), membership)

    def revoke(self, tenant_id: str, user_sub: str) -> bool:
        with self._lock:
            return self._items.pop((tenant_id, user_sub), None) is not None

    def of_user(self, user_sub: str) -> tuple[Membership, ...]:
        with self._lock:
            mine = [m for m in self._items.values() if m.user_sub == user_sub]
        return tuple(sorted(mine, key=lambda m: m.tenant_id))


class InMemoryUserDirectory:
    """A fake identity provider's user pool: users by name, each with a generated sub."""

    def __init__(self) -> None:
        self.users: dict[str, DirectoryUser] = {}
        self.groups: dict[str, set[str]] = {}
        self.passwords: dict[str, str | None] = {}
        self.signed_out: list[str] = []
        self._lock = threading.Lock()

    def create(
        self,
        username: str,
        *,
        tenant_id: str,
        groups: Collection[str] = (),
        email: str | None = None,
        password: str | None = None,
    ) -> DirectoryUser:
        if not username.strip():
            raise InvalidInputError("the username must not be blank")
        with self._lock:
            if username in self.users:
                raise AlreadyExistsError(f"user {username} exists already: choose another username")
            user = DirectoryUser(username=username, sub=str(uuid.uuid4()), tenant_id=tenant_id)
            self.users[username] = user
            self.groups[username] = set(groups)
            self.passwords[username] = password
            return user

    def get(self, username: str) -> DirectoryUser:
        with self._lock:
            user = self.users.get(username)
        if user is None:
            raise NotFoundError(f"user {username} does not exist in the user pool: check the username")
        return user

    def sign_out(self, username: str) -> None:
        self.get(username)
        with self._lock:
            self.signed_out.append(username)
