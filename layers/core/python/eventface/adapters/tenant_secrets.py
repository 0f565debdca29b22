"""The names of a tenant's secrets in Secrets Manager (``GET /v1/crm/secrets``), never their values.

ListSecrets with a ``name`` filter on the tenant's prefix (:mod:`eventface.domain.secrets`); the
filter is a prefix match that AWS documents loosely, so the names are checked again here: a tenant
sees only names that start exactly with its own prefix. Secrets scheduled for deletion are left
out (ListSecrets does so by default).
"""

from __future__ import annotations

from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from eventface import aws
from eventface.domain.errors import DependencyError
from eventface.domain.secrets import tenant_secret_prefix

#: Most names listed for one tenant (a tenant has a handful: one per CRM).
MAX_NAMES: Final = 200
_PAGE: Final = 100


class SecretsManagerSecretCatalog:
    """A tenant's secret names, from Secrets Manager.

    Parameters
    ----------
    client
        A Secrets Manager client; ``aws.client("secretsmanager")`` on first use.
    """

    def __init__(self, client: Any | None = None) -> None:
        self._client = client

    def names(self, tenant_id: str) -> tuple[str, ...]:
        """The names under the tenant's prefix, sorted (at most :data:`MAX_NAMES`).

        Raises
        ------
        DependencyError
            When Secrets Manager cannot be listed (the message says what to check).
        """
        prefix = tenant_secret_prefix(tenant_id)
        client = self._client if self._client is not None else aws.client("secretsmanager")
        names: set[str] = set()
        arguments: dict[str, Any] = {"Filters": [{"Key": "name", "Values": [prefix]}], "MaxResults": _PAGE}
        try:
            while len(names) < MAX_NAMES:
                answer = client.list_secrets(**arguments)
                names.update(
                    name
                    for entry in answer.get("SecretList", [])
                    if isinstance(name := entry.get("Name"), str) and name.startswith(prefix)
                )
                token = answer.get("NextToken")
                if not token:
                    break
                arguments["NextToken"] = token
        except (ClientError, BotoCoreError) as exc:
            raise DependencyError(
                f"the secret names could not be listed ({type(exc).__name__}): check that the admin "
                "function may call secretsmanager:ListSecrets"
            ) from exc
        return tuple(sorted(names)[:MAX_NAMES])
