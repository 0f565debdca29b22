"""Rate limits: the in-memory limiter, the services on a fixed clock, and 429 + Retry-After."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from chalice.app import Response

from eventface.adapters.memory import FixedClock
from eventface.adapters.rate_limit import InMemoryRateLimiter, seconds_left, window_of
from eventface.api.errors import ADMIN_ERRORS, EDGE_ERRORS
from eventface.api.http import handled
from eventface.domain.errors import InvalidInputError, TooManyRequestsError
from eventface.services import rate_limits
from eventface.services.rate_limits import (
    API_KEY,
    DEVICE,
    RateLimits,
    check,
    check_failed_auth_allowed,
    record_failed_auth,
)

#: 09:00:15 UTC: 45 s before the minute ends.
NOW = datetime(2026, 5, 1, 9, 0, 15, tzinfo=UTC)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def limiter() -> InMemoryRateLimiter:
    return InMemoryRateLimiter()


# ------------------------------------------------------------------------------ the limiter


def test_limiter_hit_allows_up_to_the_limit_then_returns_seconds_to_window_end(
    limiter: InMemoryRateLimiter,
) -> None:
    # given / when
    answers = [limiter.hit("device:d1", 3, 60, NOW) for _ in range(5)]
    # then
    assert answers == [None, None, None, 45, 45]
    assert limiter.peek("device:d1", 60, NOW) == 5


def test_limiter_counts_keys_separately(limiter: InMemoryRateLimiter) -> None:
    # given
    limiter.hit("device:d1", 1, 60, NOW)
    # when
    other = limiter.hit("device:d2", 1, 60, NOW)
    # then
    assert other is None
    assert limiter.peek("device:d2", 60, NOW) == 1


def test_limiter_new_window_starts_from_zero(limiter: InMemoryRateLimiter) -> None:
    # given: over the limit in the 09:00 minute
    limiter.hit("k", 1, 60, NOW)
    assert limiter.hit("k", 1, 60, NOW) == 45
    # when
    next_minute = datetime(2026, 5, 1, 9, 1, 0, tzinfo=UTC)
    # then
    assert limiter.peek("k", 60, next_minute) == 0
    assert limiter.hit("k", 1, 60, next_minute) is None


def test_limiter_peek_does_not_count(limiter: InMemoryRateLimiter) -> None:
    # given / when
    for _ in range(3):
        limiter.peek("k", 60, NOW)
    # then
    assert limiter.peek("k", 60, NOW) == 0
    assert limiter.hit("k", 1, 60, NOW) is None


def test_limiter_counts_every_hit_under_threads(limiter: InMemoryRateLimiter) -> None:
    # given
    barrier = threading.Barrier(20)

    def hit(_: int) -> int | None:
        barrier.wait()
        return limiter.hit("k", 10, 60, NOW)

    # when
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(hit, range(20)))
    # then
    assert answers.count(None) == 10
    assert limiter.peek("k", 60, NOW) == 20


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 5, 1, 9, 0, 0, tzinfo=UTC), 60),
        (datetime(2026, 5, 1, 9, 0, 15, tzinfo=UTC), 45),
        (datetime(2026, 5, 1, 9, 0, 59, 500000, tzinfo=UTC), 1),
        (datetime(2026, 5, 1, 9, 0, 58, 100000, tzinfo=UTC), 2),
    ],
)
def test_seconds_left_rounds_up_to_whole_seconds_and_is_at_least_one(now: datetime, expected: int) -> None:
    # given / when / then
    assert seconds_left(now, 60) == expected


def test_window_of_aligns_windows_to_the_epoch() -> None:
    # given / when
    start, end = window_of(NOW, 60)
    # then
    assert start == int(datetime(2026, 5, 1, 9, 0, tzinfo=UTC).timestamp())
    assert end - start == 60


@pytest.mark.parametrize(
    ("key", "limit", "window", "now"),
    [
        ("", 1, 60, NOW),
        ("k", 0, 60, NOW),
        ("k", 1, 0, NOW),
        ("k", 1, 60, datetime(2026, 5, 1, 9, 0)),  # naive
    ],
)
def test_limiter_rejects_invalid_arguments(
    limiter: InMemoryRateLimiter, key: str, limit: int, window: int, now: datetime
) -> None:
    # given / when / then
    with pytest.raises(ValueError):
        limiter.hit(key, limit, window, now)


# ------------------------------------------------------------------------------- the services


def test_check_under_the_limit_passes(limiter: InMemoryRateLimiter, clock: FixedClock) -> None:
    # given / when
    for _ in range(3):
        check(limiter, clock, kind=DEVICE, principal_id="d1", limit=3)
    # then
    assert limiter.peek("device:d1", 60, NOW) == 3


@pytest.mark.parametrize("kind", [DEVICE, API_KEY])
def test_check_over_the_limit_raises_with_seconds_to_the_end_of_the_minute(
    limiter: InMemoryRateLimiter, clock: FixedClock, kind: str
) -> None:
    # given
    for _ in range(3):
        check(limiter, clock, kind=kind, principal_id="p1", limit=3)
    # when
    with pytest.raises(TooManyRequestsError) as raised:
        check(limiter, clock, kind=kind, principal_id="p1", limit=3)
    # then
    assert raised.value.retry_after == 45
    assert str(raised.value) == f"too many requests for this {kind}: wait 45 s and retry"
    assert raised.value.code == "TooManyRequestsError"


def test_check_a_new_minute_resets_the_count(limiter: InMemoryRateLimiter, clock: FixedClock) -> None:
    # given: over the limit at 09:00:15
    check(limiter, clock, kind=DEVICE, principal_id="d1", limit=1)
    with pytest.raises(TooManyRequestsError):
        check(limiter, clock, kind=DEVICE, principal_id="d1", limit=1)
    # when
    clock.advance(45)  # 09:01:00
    # then
    check(limiter, clock, kind=DEVICE, principal_id="d1", limit=1)


def test_check_device_and_key_with_the_same_id_count_separately(
    limiter: InMemoryRateLimiter, clock: FixedClock
) -> None:
    # given
    check(limiter, clock, kind=DEVICE, principal_id="same", limit=1)
    # when / then: no error
    check(limiter, clock, kind=API_KEY, principal_id="same", limit=1)


def test_failed_auth_budget_refuses_the_source_until_the_minute_ends(
    limiter: InMemoryRateLimiter, clock: FixedClock
) -> None:
    # given: three failures, the budget, each recorded without refusal
    for _ in range(3):
        check_failed_auth_allowed(limiter, clock, "203.0.113.7", 3)
        record_failed_auth(limiter, clock, "203.0.113.7", 3)
    # when: the next attempt, whatever its credentials
    clock.advance(5)
    with pytest.raises(TooManyRequestsError) as raised:
        check_failed_auth_allowed(limiter, clock, "203.0.113.7", 3)
    # then
    assert raised.value.retry_after == 40
    assert str(raised.value) == "too many failed sign-in attempts: wait 40 s and retry"
    assert limiter.peek("authfail:203.0.113.7", 60, clock.now()) == 3  # the refusal did not count


def test_failed_auth_budget_comes_back_in_the_next_minute(
    limiter: InMemoryRateLimiter, clock: FixedClock
) -> None:
    # given
    for _ in range(3):
        record_failed_auth(limiter, clock, "203.0.113.7", 3)
    # when
    clock.advance(45)
    # then: no error
    check_failed_auth_allowed(limiter, clock, "203.0.113.7", 3)


def test_failed_auth_of_one_source_does_not_affect_another(
    limiter: InMemoryRateLimiter, clock: FixedClock
) -> None:
    # given
    for _ in range(3):
        record_failed_auth(limiter, clock, "203.0.113.7", 3)
    # when / then: no error
    for _ in range(10):
        check_failed_auth_allowed(limiter, clock, "198.51.100.1", 3)
    assert limiter.peek("authfail:198.51.100.1", 60, NOW) == 0


def test_record_failed_auth_over_the_budget_raises(limiter: InMemoryRateLimiter, clock: FixedClock) -> None:
    # given: attempts that all passed the check before any failure was recorded
    for _ in range(3):
        record_failed_auth(limiter, clock, "203.0.113.7", 3)
    # when / then
    with pytest.raises(TooManyRequestsError) as raised:
        record_failed_auth(limiter, clock, "203.0.113.7", 3)
    assert raised.value.retry_after == 45


@pytest.mark.parametrize(
    "settings",
    [
        {"per_device_per_minute": 0},
        {"per_key_per_minute": -1},
        {"failed_auth_per_minute": 1.5},
    ],
)
def test_rate_limits_reject_non_positive_limits(settings: dict[str, Any]) -> None:
    # given / when / then
    with pytest.raises(ValueError, match="fix the setting"):
        RateLimits(**settings)


def test_rate_limits_defaults() -> None:
    # given / when
    limits = RateLimits()
    # then
    assert (limits.per_device_per_minute, limits.per_key_per_minute, limits.failed_auth_per_minute) == (
        120,
        600,
        10,
    )


@pytest.mark.parametrize("second", [0, 1, 29, 58, 59])
@pytest.mark.parametrize("microsecond", [0, 250000, 999999])
def test_services_window_arithmetic_matches_the_limiters(second: int, microsecond: int) -> None:
    # given
    now = datetime(2026, 5, 1, 9, 0, second, microsecond, tzinfo=UTC)
    # when / then
    assert rate_limits._seconds_left(now) == seconds_left(now, rate_limits.WINDOW_SECONDS)


@pytest.mark.parametrize("retry_after", [0, -5, True])
def test_too_many_requests_error_requires_a_positive_retry_after(retry_after: int) -> None:
    # given / when / then
    with pytest.raises(ValueError):
        TooManyRequestsError("slow down", retry_after)


# ----------------------------------------------------------------------------------- the API


@pytest.mark.parametrize("table", [EDGE_ERRORS, ADMIN_ERRORS])
def test_handled_answers_429_with_retry_after(table: Mapping[type[BaseException], int]) -> None:
    # given
    @handled(table)
    def view() -> Response:
        raise TooManyRequestsError("too many requests for this device: wait 12 s and retry", retry_after=12)

    # when
    response = view()
    # then
    assert isinstance(response, Response)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "12"
    assert response.headers["Content-Type"] == "application/json"
    assert json.loads(response.body) == {
        "Code": "TooManyRequestsError",
        "Message": "too many requests for this device: wait 12 s and retry",
    }


def test_handled_other_errors_carry_no_retry_after() -> None:
    # given
    @handled(EDGE_ERRORS)
    def view() -> Response:
        raise InvalidInputError("bad")

    # when
    response = view()
    # then
    assert response.status_code == 400
    assert "Retry-After" not in response.headers
