"""The one place boto3 clients are created: cached per service, with retries and timeouts.

No endpoint is ever passed from code: botocore reads ``AWS_ENDPOINT_URL`` (and the per-service
``AWS_ENDPOINT_URL_<SERVICE>``) itself, so the same code talks to AWS or to the local moto server.
"""

from __future__ import annotations

import functools
from typing import Any

import boto3
import botocore.session
from botocore.config import Config

#: Retries (standard mode: exponential backoff with jitter on throttling and 5xx) and timeouts.
DEFAULT_MAX_ATTEMPTS = 3
CONNECT_TIMEOUT_SECONDS = 2
READ_TIMEOUT_SECONDS = 10
#: Enough pooled connections for the gallery's parallel object and byte-range GETs (botocore's
#: default of 10 would make concurrent readers queue and discard connections).
MAX_POOL_CONNECTIONS = 32


@functools.cache
def client(service: str) -> Any:
    """Return the process-wide boto3 client for ``service`` (created on first use).

    Parameters
    ----------
    service
        A boto3 service name such as ``"s3"`` or ``"dynamodb"``.

    Returns
    -------
    Any
        A botocore client; thread-safe, so it is shared by every thread of the container.
    """
    core = botocore.session.get_session()
    retries: dict[str, Any] = {"mode": "standard"}
    # An explicit max_attempts in Config would override AWS_MAX_ATTEMPTS, which tests and local
    # runs set to 1 to fail fast; botocore's own config chain resolves it (we read no env vars).
    if core.get_config_variable("max_attempts") is None:
        retries["max_attempts"] = DEFAULT_MAX_ATTEMPTS
    config = Config(
        retries=retries,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        max_pool_connections=MAX_POOL_CONNECTIONS,
    )
    return boto3.session.Session(botocore_session=core).client(service, config=config)
