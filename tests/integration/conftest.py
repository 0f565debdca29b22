"""Integration fixtures: one moto server on loopback for the session, a fresh bucket per test.

The environment is set before any client exists, so botocore finds the server through
``AWS_ENDPOINT_URL`` exactly as the local stack does; child processes inherit it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest

from eventface import aws
from eventface.local.moto_patches import patch_moto
from eventface.local.stack import FAKE_AWS

ENVIRONMENT = {
    **FAKE_AWS,
    # DynamoDB Streams calls name an account in their ARN, so botocore would send them to an
    # account-based endpoint that in-process moto does not intercept.
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
}


@pytest.fixture
def in_process_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in-process (``mock_aws``) with the test environment and no endpoint URL."""
    from moto import mock_aws

    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    patch_moto()
    aws.client.cache_clear()
    try:
        with mock_aws():
            yield
    finally:
        aws.client.cache_clear()


@pytest.fixture
def table_prefix(in_process_aws: None) -> str:
    """Every DynamoDB table of the schema, created fresh under a unique prefix."""
    from eventface.adapters.dynamo_models import create_tables

    prefix = f"t{uuid.uuid4().hex[:12]}"
    create_tables(prefix, wait=False)  # moto's tables are ACTIVE at once
    return prefix


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """URL of a moto server on 127.0.0.1 (random free port), exported as ``AWS_ENDPOINT_URL``."""
    from moto.server import ThreadedMotoServer

    patch = pytest.MonkeyPatch()
    for name, value in ENVIRONMENT.items():
        patch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        patch.delenv(name, raising=False)
    # verbose=False does not silence werkzeug's per-request log lines.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # moto checks conditional writes without a lock: the same serialisation as the local stack.
    patch_moto()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    patch.setenv("AWS_ENDPOINT_URL", endpoint)
    aws.client.cache_clear()
    try:
        yield endpoint
    finally:
        aws.client.cache_clear()
        server.stop()
        patch.undo()


@pytest.fixture
def bucket(moto_endpoint: str) -> Iterator[str]:
    """A new, empty bucket (unique name) on the session's moto server."""
    aws.client.cache_clear()
    name = f"gallery-{uuid.uuid4().hex[:20]}"
    aws.client("s3").create_bucket(Bucket=name)
    yield name
    aws.client.cache_clear()
