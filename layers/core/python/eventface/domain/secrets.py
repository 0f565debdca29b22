"""Tenant-bound secrets: the naming scheme that both the code and the IAM policy enforce.

A tenant's secrets (a CRM's API key, a CRM webhook's HMAC key) are Secrets Manager secrets named

    ``eventface/tenants/<tenant_id>/<name>``        e.g. ``eventface/tenants/acme/crm-api-key``

and a venue's ``crm.secret_id`` must be such a *name* under the caller's own tenant (not an ARN:
an ARN could name another account or region). The platform's own secrets (the push webhook signing
key, ...) live under ``eventface/platform/`` and can never be named by a tenant.

Two checks keep it so: the admin API refuses a ``secret_id`` outside the caller's prefix when a
venue is created or changed, and the CRM connector checks it again against the venue's tenant
before it reads the secret (a record written before the rule, or around the service, is refused).
The IAM policy of the functions that read secrets (:func:`secret_read_statements`) is derived from
the same constants, so that code and policy cannot drift apart: the ``vip_enrich`` role may read
``eventface/tenants/*`` (and the platform's push key), nothing else. IAM cannot tell tenants apart
(one function serves every tenant): that part is the code's check. Pure rules (stdlib only).
"""

from __future__ import annotations

import re
from typing import Any, Final

from eventface.domain.errors import InvalidInputError
from eventface.domain.model import check_id

#: Every secret of the platform lives under this root.
SECRET_ROOT: Final = "eventface/"
#: A tenant's secrets: ``eventface/tenants/<tenant_id>/<name>``.
TENANT_SECRETS_ROOT: Final = "eventface/tenants/"
#: The platform's own secrets (never nameable by a tenant): ``eventface/platform/<name>``.
PLATFORM_SECRETS_ROOT: Final = "eventface/platform/"
#: Secrets Manager's limit on a secret name.
MAX_SECRET_NAME: Final = 512
#: The part after the tenant prefix: Secrets Manager's name characters, in ``/``-separated
#: non-empty segments (no leading, trailing or doubled ``/``).
_LEAF: Final = re.compile(r"[A-Za-z0-9_+=.@-]+(?:/[A-Za-z0-9_+=.@-]+)*")
#: The functions that read secrets, and which scopes they read.
SECRET_READERS: Final = {
    # asks the venue's CRM (tenant secrets) and pushes to staff devices (the platform's push key)
    "vip_enrich": ("tenants", "platform"),
    # pushes campaign messages and stamps (the platform's push key)
    "push_dispatch": ("platform",),
    # signs pagination cursors (the platform's cursor key, EVENTFACE_CURSOR_SECRET_ID)
    "admin_api": ("platform",),
}
_SCOPE_ROOTS: Final = {"tenants": TENANT_SECRETS_ROOT, "platform": PLATFORM_SECRETS_ROOT}


def tenant_secret_prefix(tenant_id: str) -> str:
    """The prefix every secret of ``tenant_id`` is named under: ``eventface/tenants/<tenant_id>/``."""
    return f"{TENANT_SECRETS_ROOT}{tenant_id}/"


def check_tenant_secret(tenant_id: str, secret_id: str, *, what: str = "crm.secret_id") -> str:
    """Return ``secret_id`` if it names a secret of ``tenant_id``, else raise InvalidInputError.

    Parameters
    ----------
    tenant_id
        The tenant that will use the secret (the caller's, or the venue's at read time).
    secret_id
        A Secrets Manager secret *name* ``eventface/tenants/<tenant_id>/<name>``.
    what
        The field's name, for the message.

    Raises
    ------
    InvalidInputError
        When it is an ARN, lies outside the tenant's prefix, or is not a valid secret name; the
        message names the allowed prefix.
    """
    # A tenant id never holds "/" (so one tenant's prefix is never inside another's).
    prefix = tenant_secret_prefix(check_id("tenant_id", tenant_id))
    hint = (
        f"name a secret under {prefix!r}, e.g. '{prefix}crm-api-key' "
        "(GET /v1/crm/secrets lists the names this tenant may use)"
    )
    if not isinstance(secret_id, str) or not secret_id:
        raise InvalidInputError(f"{what} is empty: {hint}")
    if secret_id.startswith("arn:"):
        raise InvalidInputError(f"{what} must be a secret name, not an ARN: {hint}")
    if not secret_id.startswith(prefix):
        raise InvalidInputError(f"{what} {secret_id!r} is not one of this tenant's secrets: {hint}")
    leaf = secret_id[len(prefix) :]
    if (
        len(secret_id) > MAX_SECRET_NAME
        or not _LEAF.fullmatch(leaf)
        or any(part in (".", "..") for part in leaf.split("/"))
    ):
        raise InvalidInputError(
            f"{what} {secret_id!r} is not a valid secret name: after {prefix!r} use 1 or more "
            f"'/'-separated parts of letters, digits and _+=.@- (not '.' or '..'; at most "
            f"{MAX_SECRET_NAME} characters). GET /v1/crm/secrets lists the names this tenant may use"
        )
    return secret_id


def secret_arn_pattern(scope: str, *, partition: str = "aws", region: str = "*", account: str = "*") -> str:
    """The IAM resource pattern of a scope's secrets (``tenants`` or ``platform``).

    Secrets Manager appends ``-`` and six random characters to a name in its ARN; the trailing
    ``*`` covers them.
    """
    if scope not in _SCOPE_ROOTS:
        raise ValueError(f"unknown secret scope {scope!r}: use one of {sorted(_SCOPE_ROOTS)}")
    return f"arn:{partition}:secretsmanager:{region}:{account}:secret:{_SCOPE_ROOTS[scope]}*"


def secret_read_statements(
    function: str, *, partition: str = "aws", region: str = "*", account: str = "*"
) -> list[dict[str, Any]]:
    """The IAM policy statements that let ``function`` read the secrets it needs, and no others.

    The deployment (issue 14's CDK app) attaches these to the function's role; a test ties them to
    :func:`check_tenant_secret`.

    Parameters
    ----------
    function
        ``vip_enrich`` or ``push_dispatch`` (see :data:`SECRET_READERS`).
    partition, region, account
        Where the secrets are (``*`` by default: pin them in a deployment).
    """
    if function not in SECRET_READERS:
        raise ValueError(f"{function!r} reads no secrets: functions that do are {sorted(SECRET_READERS)}")
    resources = [
        secret_arn_pattern(scope, partition=partition, region=region, account=account)
        for scope in SECRET_READERS[function]
    ]
    return [
        {
            "Sid": "ReadEventfaceSecrets",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": resources,
        }
    ]


def secret_list_statements() -> list[dict[str, Any]]:
    """The IAM statement that lets the admin API list secret names (``GET /v1/crm/secrets``).

    ListSecrets has no resource-level permissions (``Resource: *``); it returns names and
    descriptions, never values, and the code shows a tenant only the names under its prefix.
    """
    return [
        {
            "Sid": "ListSecretNames",
            "Effect": "Allow",
            "Action": ["secretsmanager:ListSecrets"],
            "Resource": ["*"],
        }
    ]
