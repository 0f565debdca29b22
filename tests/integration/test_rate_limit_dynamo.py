"""The DynamoDB rate limiter against moto in-process (``mock_aws``): counting, windows, concurrency."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from eventface import aws
from eventface.adapters.dynamo_repositories import DynamoTables
from eventface.adapters.memory import FixedClock
from eventface.adapters.rate_limit import DynamoRateLimiter, RateCounterItem, bind_rate_limits
from eventface.domain.errors import DependencyError, TooManyRequestsError
from eventface.services.rate_limits import DEVICE, check, check_failed_auth_allowed, record_failed_auth

#: 09:00:15 UTC: 45 s before the minute ends.
NOW = datetime(2026, 5, 1, 9, 0, 15, tzinfo=UTC)


@pytest.fixture
def limiter(in_process_aws: None) -> DynamoRateLimiter:
    """A limiter on a fresh ``<prefix>-rate_limits`` table (TTL on, like the schema's other tables)."""
    prefix = f"t{uuid.uuid4().hex[:12]}"
    bind_rate_limits(prefix)
    RateCounterItem.create_table(wait=False, billing_mode="PAY_PER_REQUEST")  # ACTIVE at once in moto
    RateCounterItem.update_ttl(ignore_update_ttl_errors=False)
    return DynamoRateLimiter(DynamoTables(prefix))


def test_dynamo_hit_counts_up_to_the_limit_then_returns_seconds_to_window_end(
    limiter: DynamoRateLimiter,
) -> None:
    # given / when
    answers = [limiter.hit("device:d1", 3, 60, NOW) for _ in range(5)]
    # then
    assert answers == [None, None, None, 45, 45]
    assert limiter.peek("device:d1", 60, NOW) == 5


def test_dynamo_hit_stores_the_window_item_with_its_expiry(limiter: DynamoRateLimiter) -> None:
    # given
    limiter.hit("device:d1", 3, 60, NOW)
    # when
    start = int(datetime(2026, 5, 1, 9, 0, tzinfo=UTC).timestamp())
    item = RateCounterItem.get(f"device:d1#{start}", consistent_read=True)
    # then
    assert int(item.hits) == 1
    assert item.expires > datetime(2026, 5, 1, 9, 1, tzinfo=UTC)
    raw = aws.client("dynamodb").get_item(
        TableName=RateCounterItem.Meta.table_name, Key={"bucket": {"S": f"device:d1#{start}"}}
    )
    assert raw["Item"]["count"] == {"N": "1"}


def test_dynamo_new_window_starts_from_zero(limiter: DynamoRateLimiter) -> None:
    # given: over the limit in the 09:00 minute
    limiter.hit("k", 1, 60, NOW)
    assert limiter.hit("k", 1, 60, NOW) == 45
    # when
    next_minute = NOW + timedelta(seconds=45)
    # then
    assert limiter.peek("k", 60, next_minute) == 0
    assert limiter.hit("k", 1, 60, next_minute) is None
    assert limiter.peek("k", 60, NOW) == 2  # the old window's item is left to TTL


def test_dynamo_peek_reads_without_counting(limiter: DynamoRateLimiter) -> None:
    # given
    assert limiter.peek("k", 60, NOW) == 0
    limiter.hit("k", 5, 60, NOW)
    # when
    counts = [limiter.peek("k", 60, NOW) for _ in range(3)]
    # then
    assert counts == [1, 1, 1]


def test_dynamo_concurrent_hits_allow_exactly_the_limit(limiter: DynamoRateLimiter) -> None:
    # given
    limiter.peek("warm-up", 60, NOW)  # the connection exists before the threads start
    barrier = threading.Barrier(20)

    def hit(_: int) -> int | None:
        barrier.wait()
        return limiter.hit("device:busy", 10, 60, NOW)

    # when
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(hit, range(20)))
    # then
    assert answers.count(None) == 10
    assert answers.count(45) == 10
    assert limiter.peek("device:busy", 60, NOW) == 20


def test_dynamo_services_refuse_over_the_limit_and_failed_sign_ins(limiter: DynamoRateLimiter) -> None:
    # given
    clock = FixedClock(NOW)
    check(limiter, clock, kind=DEVICE, principal_id="d1", limit=1)
    for _ in range(2):
        record_failed_auth(limiter, clock, "203.0.113.7", 2)
    # when / then
    with pytest.raises(TooManyRequestsError) as too_many:
        check(limiter, clock, kind=DEVICE, principal_id="d1", limit=1)
    assert too_many.value.retry_after == 45
    with pytest.raises(TooManyRequestsError) as failures:
        check_failed_auth_allowed(limiter, clock, "203.0.113.7", 2)
    assert failures.value.retry_after == 45
    check_failed_auth_allowed(limiter, clock, "198.51.100.1", 2)


def test_dynamo_missing_table_is_a_dependency_error(in_process_aws: None) -> None:
    # given: no table was created for this prefix
    limiter = DynamoRateLimiter(DynamoTables(f"missing{uuid.uuid4().hex[:8]}"))
    # when / then
    with pytest.raises(DependencyError, match="create the tables"):
        limiter.hit("k", 1, 60, NOW)
    with pytest.raises(DependencyError, match="create the tables"):
        limiter.peek("k", 60, NOW)
