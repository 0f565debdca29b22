"""Rate limits: the sliding-window limiter in memory, the services on a fixed clock, 429 + Retry-After."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from chalice.app import Response

from eventface.adapters.memory import FixedClock
from eventface.adapters.rate_limit import Counts, InMemoryRateLimiter, window_of
from eventface.api.errors import ADMIN_ERRORS, EDGE_ERRORS
from eventface.api.http import handled
from eventface.domain.errors import InvalidInputError, TooManyRequestsError
from eventface.services.rate_limits import (
    API_KEY,
    DEVICE,
    RateLimits,
    check,
    check_failed_auth_allowed,
    record_failed_auth,
    screen_source,
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


def test_limiter_hit_allows_up_to_the_limit_then_returns_the_wait(limiter: InMemoryRateLimiter) -> None:
    # given / when: 5 requests 15 s into a minute, 3 allowed
    answers = [limiter.hit("device:d1", 3, 60, NOW) for _ in range(5)]
    # then: the 4th is refused until its window's 4 requests weigh 2 (30 s into the next minute);
    # the 5th is answered from memory, uncounted
    assert answers == [None, None, None, 75, 75]
    assert limiter.counted("device:d1") == 4
    assert limiter.hit("device:d1", 3, 60, NOW + timedelta(seconds=75)) is None


def test_limiter_refuses_a_burst_across_the_window_boundary(limiter: InMemoryRateLimiter) -> None:
    # given: the whole limit spent in the last second of a minute
    end_of_minute = datetime(2026, 5, 1, 9, 0, 59, tzinfo=UTC)
    first = [limiter.hit("device:d1", 120, 60, end_of_minute) for _ in range(120)]
    # when: another burst two seconds later, in the next calendar minute
    second = [limiter.hit("device:d1", 120, 60, end_of_minute + timedelta(seconds=2)) for _ in range(120)]
    # then: the previous minute's 120 still weigh 118: two more requests, not another 120
    assert first.count(None) == 120
    assert second.count(None) == 2
    assert second[2] == 1  # then about two a second, as the earlier burst fades


def test_limiter_counts_keys_separately(limiter: InMemoryRateLimiter) -> None:
    # given
    limiter.hit("device:d1", 1, 60, NOW)
    # when
    other = limiter.hit("device:d2", 1, 60, NOW)
    # then
    assert other is None
    assert limiter.peek("device:d2", 1, 60, NOW) == 105
    assert limiter.peek("device:d3", 1, 60, NOW) is None


def test_limiter_has_no_calendar_reset_and_the_previous_window_fades(limiter: InMemoryRateLimiter) -> None:
    # given: over the limit in the 09:00 minute (2 requests, 1 allowed)
    limiter.hit("k", 1, 60, NOW)
    assert limiter.hit("k", 1, 60, NOW) == 105
    # when / then: the next minute starts with the 2 requests weighing fully, then fading
    next_minute = datetime(2026, 5, 1, 9, 1, 0, tzinfo=UTC)
    assert limiter.peek("k", 1, 60, next_minute) is not None
    assert limiter.peek("k", 1, 60, next_minute + timedelta(seconds=59)) is not None
    assert limiter.hit("k", 1, 60, next_minute + timedelta(seconds=60)) is None


def test_limiter_peek_does_not_count(limiter: InMemoryRateLimiter) -> None:
    # given / when
    answers = [limiter.peek("k", 1, 60, NOW) for _ in range(3)]
    # then
    assert answers == [None, None, None]
    assert limiter.counted("k") == 0
    assert limiter.hit("k", 1, 60, NOW) is None


def test_limiter_blocked_knows_only_the_refusals_this_process_saw(limiter: InMemoryRateLimiter) -> None:
    # given
    limiter.hit("k", 1, 60, NOW)
    assert limiter.blocked("k", NOW) is None  # within the limit: nothing known
    # when
    wait = limiter.hit("k", 1, 60, NOW)
    # then
    assert wait == 105
    assert limiter.blocked("k", NOW + timedelta(seconds=5)) == 100
    assert limiter.blocked("k", NOW + timedelta(seconds=105)) is None
    assert limiter.blocked("other", NOW) is None


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


@pytest.mark.parametrize(
    ("previous", "current", "elapsed", "limit", "expected"),
    [
        (0, 4, 15.0, 3, 75),  # in the next window, once this window's 4 weigh 2
        (0, 1, 15.0, 1, 105),  # limit 1: only once this window no longer weighs at all
        (6, 1, 0.0, 3, 50),  # later in this window, as the previous window's 6 fade
        (120, 3, 1.0, 120, 1),  # after a full burst, about two requests a second come back
    ],
)
def test_counts_wait_is_the_first_whole_second_one_more_request_fits(
    previous: int, current: int, elapsed: float, limit: int, expected: int
) -> None:
    # given
    counts = Counts(previous, current, elapsed, 60)
    # when
    wait = counts.wait(limit)
    # then: one more request fits after the wait, and not a second before it
    assert wait == expected
    assert Counts(*_slid(previous, current, elapsed + wait), 60).admits(limit, 1)
    assert not Counts(*_slid(previous, current, elapsed + wait - 1), 60).admits(limit, 1)


def _slid(previous: int, current: int, elapsed: float) -> tuple[int, int, float]:
    """The counts ``elapsed`` seconds after the current window started, with no new requests."""
    if elapsed < 60:
        return previous, current, elapsed
    if elapsed < 120:
        return current, 0, elapsed - 60
    return 0, 0, elapsed - 120


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
    assert limiter.counted("device:d1") == 3


@pytest.mark.parametrize("kind", [DEVICE, API_KEY])
def test_check_over_the_limit_raises_with_seconds_until_one_more_fits(
    limiter: InMemoryRateLimiter, clock: FixedClock, kind: str
) -> None:
    # given
    for _ in range(3):
        check(limiter, clock, kind=kind, principal_id="p1", limit=3)
    # when
    with pytest.raises(TooManyRequestsError) as raised:
        check(limiter, clock, kind=kind, principal_id="p1", limit=3)
    # then
    assert raised.value.retry_after == 75
    assert str(raised.value) == f"too many requests for this {kind}: wait 75 s and retry"
    assert raised.value.code == "TooManyRequestsError"


def test_check_a_new_calendar_minute_does_not_reset_the_count(
    limiter: InMemoryRateLimiter, clock: FixedClock
) -> None:
    # given: over the limit at 09:00:15
    check(limiter, clock, kind=DEVICE, principal_id="d1", limit=1)
    with pytest.raises(TooManyRequestsError):
        check(limiter, clock, kind=DEVICE, principal_id="d1", limit=1)
    # when: the calendar minute turns
    clock.advance(45)  # 09:01:00
    # then: still refused; admitted once the requests are a full window old
    with pytest.raises(TooManyRequestsError):
        check(limiter, clock, kind=DEVICE, principal_id="d1", limit=1)
    clock.advance(60)
    check(limiter, clock, kind=DEVICE, principal_id="d1", limit=1)


def test_check_device_and_key_with_the_same_id_count_separately(
    limiter: InMemoryRateLimiter, clock: FixedClock
) -> None:
    # given
    check(limiter, clock, kind=DEVICE, principal_id="same", limit=1)
    # when / then: no error
    check(limiter, clock, kind=API_KEY, principal_id="same", limit=1)


def test_failed_auth_budget_refuses_the_source_until_a_failure_fades(
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
    # then: 20 s into the next minute (09:01:20) the 3 failures weigh 2
    assert raised.value.retry_after == 60
    assert str(raised.value) == "too many failed sign-in attempts: wait 60 s and retry"
    assert limiter.counted("authfail:203.0.113.7") == 3  # the refusal did not count


def test_failed_auth_budget_comes_back_as_the_failures_fade(
    limiter: InMemoryRateLimiter, clock: FixedClock
) -> None:
    # given
    for _ in range(3):
        record_failed_auth(limiter, clock, "203.0.113.7", 3)
    # when / then: not at the calendar minute, but once a failure's weight has gone
    clock.advance(45)
    with pytest.raises(TooManyRequestsError):
        check_failed_auth_allowed(limiter, clock, "203.0.113.7", 3)
    clock.advance(20)
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
        screen_source(limiter, clock, "198.51.100.1")
    assert limiter.counted("authfail:198.51.100.1") == 0


def test_record_failed_auth_over_the_budget_raises(limiter: InMemoryRateLimiter, clock: FixedClock) -> None:
    # given: attempts that all passed the check before any failure was recorded
    for _ in range(3):
        record_failed_auth(limiter, clock, "203.0.113.7", 3)
    # when / then
    with pytest.raises(TooManyRequestsError) as raised:
        record_failed_auth(limiter, clock, "203.0.113.7", 3)
    assert raised.value.retry_after == 75


def test_screen_source_refuses_without_io_once_this_process_saw_the_source_over_budget(
    limiter: InMemoryRateLimiter, clock: FixedClock
) -> None:
    # given: within budget, screening lets the source through
    record_failed_auth(limiter, clock, "203.0.113.7", 1)
    screen_source(limiter, clock, "203.0.113.7")
    with pytest.raises(TooManyRequestsError):
        record_failed_auth(limiter, clock, "203.0.113.7", 1)
    # when / then: refused from memory until the wait is over
    clock.advance(100)
    with pytest.raises(TooManyRequestsError) as raised:
        screen_source(limiter, clock, "203.0.113.7")
    assert raised.value.retry_after == 5
    clock.advance(5)
    screen_source(limiter, clock, "203.0.113.7")


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
