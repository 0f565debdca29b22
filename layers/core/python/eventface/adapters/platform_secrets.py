"""Secrets of the platform itself (not a tenant's), read from Secrets Manager.

The composition root reads one when it first builds the thing that needs it (the pagination
cursor seal) and keeps the result for the life of the container, so a secret is read once per
cold start. A secret that is missing or unreadable is a deployment fault: DependencyError (503),
never a guess or a built-in default.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from eventface import aws
from eventface.domain.errors import DependencyError


def read_secret_bytes(secret_id: str, *, min_bytes: int = 1, client: Any = None) -> bytes:
    """The value of ``secret_id``: its SecretString as UTF-8, or its SecretBinary.

    Parameters
    ----------
    secret_id
        Name or ARN of the secret.
    min_bytes
        The shortest value that is usable (a signing key's minimum length).
    client
        A Secrets Manager client; ``aws.client("secretsmanager")`` by default.

    Raises
    ------
    DependencyError
        The secret cannot be read, or is shorter than ``min_bytes``.
    """
    secrets = client if client is not None else aws.client("secretsmanager")
    try:
        answer = secrets.get_secret_value(SecretId=secret_id)
    except (ClientError, BotoCoreError) as exc:
        code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
        raise DependencyError(
            f"the platform secret {secret_id!r} could not be read ({code or type(exc).__name__}): "
            "check that it exists and that the function may read it"
        ) from exc
    text = answer.get("SecretString")
    value = text.encode() if isinstance(text, str) else answer.get("SecretBinary")
    if not isinstance(value, bytes) or len(value) < max(min_bytes, 1):
        raise DependencyError(
            f"the platform secret {secret_id!r} is empty or too short: store at least "
            f"{max(min_bytes, 1)} random bytes in it"
        )
    return value
