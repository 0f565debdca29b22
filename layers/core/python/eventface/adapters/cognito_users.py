"""Cognito adapter of :class:`~eventface.ports_access.UserDirectory`: the user pool's admin APIs.

Users are created with their tenant in ``custom:tenant_id``, an attribute the pool must declare
immutable and no app client may write (see the README's access-control section): the attribute is
set once, here, by the platform. Every boto3 error is translated by its code; callers never see a
``ClientError``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from eventface import aws
from eventface.domain.access import TENANT_ATTRIBUTE, DirectoryUser
from eventface.domain.errors import (
    AlreadyExistsError,
    DependencyError,
    EventfaceError,
    InvalidInputError,
    NotFoundError,
)

_INVALID = frozenset({"InvalidParameterException", "InvalidPasswordException"})


def _attributes(attributes: Sequence[Mapping[str, str]]) -> dict[str, str]:
    return {a["Name"]: a.get("Value", "") for a in attributes}


class CognitoUserDirectory:
    """The users of one Cognito user pool.

    Parameters
    ----------
    pool_id
        The user pool (``EVENTFACE_USER_POOL_ID``).
    cognito
        A ``cognito-idp`` client; the process-wide one by default.
    """

    def __init__(self, pool_id: str, cognito: Any | None = None) -> None:
        self._pool_id = pool_id
        self._client = cognito or aws.client("cognito-idp")

    def create(
        self,
        username: str,
        *,
        tenant_id: str,
        groups: Collection[str] = (),
        email: str | None = None,
        password: str | None = None,
    ) -> DirectoryUser:
        """AdminCreateUser with the tenant attribute, then the password (if given) and the groups."""
        attributes = [{"Name": TENANT_ATTRIBUTE, "Value": tenant_id}]
        if email:
            attributes += [{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}]
        request: dict[str, Any] = {
            "UserPoolId": self._pool_id,
            "Username": username,
            "UserAttributes": attributes,
        }
        if password is not None:
            request["MessageAction"] = "SUPPRESS"  # the caller hands the password over itself
        elif email:
            request["DesiredDeliveryMediums"] = ["EMAIL"]
        else:
            raise InvalidInputError(
                "a new user needs an e-mail address for their invitation (temporary password): "
                "give the user's e-mail address"
            )
        created = self._call("creating the user", "admin_create_user", **request)["User"]
        if password is not None:
            self._call(
                "setting the user's password",
                "admin_set_user_password",
                UserPoolId=self._pool_id,
                Username=username,
                Password=password,
                Permanent=True,
            )
        for group in groups:
            with contextlib.suppress(AlreadyExistsError):
                self._call("creating the group", "create_group", UserPoolId=self._pool_id, GroupName=group)
            self._call(
                "adding the user to the group",
                "admin_add_user_to_group",
                UserPoolId=self._pool_id,
                Username=username,
                GroupName=group,
            )
        values = _attributes(created.get("Attributes", []))
        return DirectoryUser(
            username=str(created.get("Username", username)),
            sub=values["sub"],
            tenant_id=values.get(TENANT_ATTRIBUTE) or None,
            enabled=bool(created.get("Enabled", True)),
        )

    def get(self, username: str) -> DirectoryUser:
        """AdminGetUser; NotFoundError if the pool has no such user."""
        found = self._call("reading the user", "admin_get_user", UserPoolId=self._pool_id, Username=username)
        values = _attributes(found.get("UserAttributes", []))
        return DirectoryUser(
            username=str(found.get("Username", username)),
            sub=values["sub"],
            tenant_id=values.get(TENANT_ATTRIBUTE) or None,
            enabled=bool(found.get("Enabled", True)),
        )

    def sign_out(self, username: str) -> None:
        """AdminUserGlobalSignOut: the user's refresh tokens stop working."""
        self._call(
            "signing the user out", "admin_user_global_sign_out", UserPoolId=self._pool_id, Username=username
        )

    def _call(self, what: str, operation: str, **request: Any) -> dict[str, Any]:
        try:
            response: dict[str, Any] = getattr(self._client, operation)(**request)
        except ClientError as exc:
            raise _translate(exc, what) from exc
        except BotoCoreError as exc:
            raise DependencyError(f"{what} failed in Cognito ({type(exc).__name__}): retry later") from exc
        return response


def _translate(exc: ClientError, what: str) -> EventfaceError:
    error = exc.response.get("Error", {})
    code, message = str(error.get("Code", "")), str(error.get("Message", ""))
    if code == "UsernameExistsException":
        return AlreadyExistsError(f"{what}: the username is taken: choose another username")
    if code == "GroupExistsException":
        return AlreadyExistsError(f"{what}: the group exists already")
    if code == "UserNotFoundException":
        return NotFoundError(f"{what}: the user pool has no such user: check the username")
    if code in _INVALID:
        return InvalidInputError(f"{what}: Cognito refused a value ({message}): correct it and retry")
    if code == "ResourceNotFoundException":
        return DependencyError(f"{what}: the user pool does not exist: check EVENTFACE_USER_POOL_ID")
    return DependencyError(f"{what} failed in Cognito ({code or 'error'}): retry later")
