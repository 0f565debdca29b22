"""The DynamoDB rate limiter against moto in-process (``mock_aws``): sliding windows, concurrency."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

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
def prefix(in_process_aws: None) -> str:
    """A fresh ``<prefix>-rate_limits`` table (TTL on, like the schema's other tables)."""
    name = f"t{uuid.uuid4().hex[:12]}"
    bind_rate_limits(name)
    RateCounterItem.create_table(wait=False, billing_mode="PAY_PER_REQUEST")  # ACTIVE at once in moto
    RateCounterItem.update_ttl(ignore_update_ttl_errors=False)
    return name


@pytest.fixture
def limiter(prefix: str) -> DynamoRateLimiter:
    return DynamoRateLimiter(DynamoTables(prefix))


@pytest.fixture
def elsewhere(prefix: str) -> DynamoRateLimiter:
    """Another container's limiter on the same table (it shares the counts, not the memory)."""
    return DynamoRateLimiter(DynamoTables(prefix))


def _stored(key: str) -> dict[str, Any]:
    raw = aws.client("dynamodb").get_item(
        TableName=RateCounterItem.Meta.table_name, Key={"bucket": {"S": key}}, ConsistentRead=True
    )
    return {name: value.get("N", value.get("S")) for name, value in raw["Item"].items()}


def test_dynamo_hit_counts_up_to_the_limit_then_returns_the_wait(
    limiter: DynamoRateLimiter, elsewhere: DynamoRateLimiter
) -> None:
    # given / when
    answers = [limiter.hit("device:d1", 3, 60, NOW) for _ in range(5)]
    # then: the 4th refused (counted), the 5th answered from memory (not counted)
    assert answers == [None, None, None, 75, 75]
    assert _stored("device:d1")["count"] == "4"
    assert elsewhere.peek("device:d1", 3, 60, NOW) == 75
    assert elsewhere.hit("device:d1", 3, 60, NOW + timedelta(seconds=75)) is None


def test_dynamo_hit_stores_one_item_per_key_with_both_windows_and_its_expiry(
    limiter: DynamoRateLimiter,
) -> None:
    # given: 2 requests in the 09:00 minute, 1 in the 09:01 minute
    limiter.hit("device:d1", 3, 60, NOW)
    limiter.hit("device:d1", 3, 60, NOW)
    limiter.hit("device:d1", 3, 60, NOW + timedelta(seconds=50))
    # when
    item = _stored("device:d1")
    # then
    start = int(datetime(2026, 5, 1, 9, 1, tzinfo=UTC).timestamp())
    assert (item["window_start"], item["count"], item["previous"]) == (str(start), "1", "2")
    assert int(item["expires"]) > start + 120


def test_dynamo_refuses_a_burst_across_the_window_boundary(limiter: DynamoRateLimiter) -> None:
    # given: the whole limit spent in the last second of a minute
    end_of_minute = datetime(2026, 5, 1, 9, 0, 59, tzinfo=UTC)
    first = [limiter.hit("device:d1", 20, 60, end_of_minute) for _ in range(20)]
    # when: another burst two seconds later, in the next calendar minute
    second = [limiter.hit("device:d1", 20, 60, end_of_minute + timedelta(seconds=2)) for _ in range(20)]
    # then: the earlier burst still weighs 19.7 of 20: nothing more fits
    assert first.count(None) == 20
    assert second.count(None) == 0


def test_dynamo_window_older_than_the_previous_one_is_forgotten(limiter: DynamoRateLimiter) -> None:
    # given: over the limit at 09:00
    limiter.hit("k", 1, 60, NOW)
    assert limiter.hit("k", 1, 60, NOW) == 105
    # when: two minutes later
    later = NOW + timedelta(seconds=105)
    # then
    assert limiter.peek("k", 1, 60, later) is None
    assert limiter.hit("k", 1, 60, later) is None
    assert _stored("k")["previous"] == "0"


def test_dynamo_peek_reads_without_counting(limiter: DynamoRateLimiter) -> None:
    # given
    assert limiter.peek("k", 5, 60, NOW) is None
    limiter.hit("k", 5, 60, NOW)
    # when
    answers = [limiter.peek("k", 5, 60, NOW) for _ in range(3)]
    # then
    assert answers == [None, None, None]
    assert _stored("k")["count"] == "1"


def test_dynamo_concurrent_hits_allow_exactly_the_limit(limiter: DynamoRateLimiter) -> None:
    # given
    limiter.peek("warm-up", 1, 60, NOW)  # the connection exists before the threads start
    barrier = threading.Barrier(20)

    def hit(_: int) -> int | None:
        barrier.wait()
        return limiter.hit("device:busy", 10, 60, NOW)

    # when
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(hit, range(20)))
    # then
    assert answers.count(None) == 10
    assert all(a is not None and a > 45 for a in answers if a is not None)


def test_dynamo_concurrent_first_hits_of_a_window_roll_it_over_once(limiter: DynamoRateLimiter) -> None:
    # given: 6 requests in the 09:00 minute
    for _ in range(6):
        limiter.hit("device:busy", 100, 60, NOW)
    barrier = threading.Barrier(10)
    next_minute = NOW + timedelta(seconds=45)

    def hit(_: int) -> int | None:
        barrier.wait()
        return limiter.hit("device:busy", 100, 60, next_minute)

    # when: the first requests of the next minute arrive together
    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(hit, range(10)))
    # then: every request counted once, the old minute kept as the previous one
    item = _stored("device:busy")
    assert (item["count"], item["previous"]) == ("10", "6")


def test_dynamo_services_refuse_over_the_limit_and_failed_sign_ins(limiter: DynamoRateLimiter) -> None:
    # given
    clock = FixedClock(NOW)
    check(limiter, clock, kind=DEVICE, principal_id="d1", limit=1)
    for _ in range(2):
        record_failed_auth(limiter, clock, "203.0.113.7", 2)
    # when / then
    with pytest.raises(TooManyRequestsError) as too_many:
        check(limiter, clock, kind=DEVICE, principal_id="d1", limit=1)
    assert too_many.value.retry_after == 105
    with pytest.raises(TooManyRequestsError) as failures:
        check_failed_auth_allowed(limiter, clock, "203.0.113.7", 2)
    assert failures.value.retry_after == 75
    check_failed_auth_allowed(limiter, clock, "198.51.100.1", 2)


def test_dynamo_missing_table_is_a_dependency_error(in_process_aws: None) -> None:
    # given: no table was created for this prefix
    limiter = DynamoRateLimiter(DynamoTables(f"missing{uuid.uuid4().hex[:8]}"))
    # when / then
    with pytest.raises(DependencyError, match="create the tables"):
        limiter.hit("k", 1, 60, NOW)
    with pytest.raises(DependencyError, match="create the tables"):
        limiter.peek("k", 1, 60, NOW)
