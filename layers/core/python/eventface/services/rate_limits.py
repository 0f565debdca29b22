"""Rate limits: requests per device and per management API key, and failed sign-ins per source.

Every limit is a fixed window of one minute (see :mod:`eventface.adapters.rate_limit` for why).
A refusal is a :class:`TooManyRequestsError`, which the APIs answer with 429 and ``Retry-After``.

Failed authentication is counted per *source* (the caller's IP address, or a key's prefix), not
per principal: a failed attempt names no principal. A source that used up its failure budget is
refused until the window ends, before its credentials are checked, so guessing stops costing us
key look-ups; successful requests are never counted, so good sources are unaffected.
"""

from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from eventface.domain.errors import TooManyRequestsError
from eventface.ports import Clock
from eventface.ports_access import RateLimiter

#: Where device admissions run (threads start on first use).
_BACKGROUND: Final = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rate-limit")
#: Every limit counts per minute.
WINDOW_SECONDS: Final = 60
#: ``kind`` of :func:`check` for edge devices and for management API keys (also the message's noun).
DEVICE: Final = "device"
API_KEY: Final = "API key"
_AUTH_FAILURE_PREFIX: Final = "authfail"


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The limits, per minute: requests per device, requests per API key, failed sign-ins per source."""

    per_device_per_minute: int = 120
    per_key_per_minute: int = 600
    failed_auth_per_minute: int = 10

    def __post_init__(self) -> None:
        for name in ("per_device_per_minute", "per_key_per_minute", "failed_auth_per_minute"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, not {value!r}: fix the setting")


def check(limiter: RateLimiter, clock: Clock, *, kind: str, principal_id: str, limit: int) -> None:
    """Count one request of ``principal_id`` (a device or API key id) against ``limit`` per minute.

    Parameters
    ----------
    kind
        What the principal is, :data:`DEVICE` or :data:`API_KEY`; part of the counter's key and
        of the message.

    Raises
    ------
    TooManyRequestsError
        Over the limit in this minute; ``retry_after`` is the seconds until the minute ends.
    """
    if not kind or not principal_id:
        raise ValueError("kind and principal_id must be non-empty: pass the authenticated principal")
    wait = limiter.hit(f"{kind}:{principal_id}", limit, WINDOW_SECONDS, clock.now())
    if wait is not None:
        raise TooManyRequestsError(f"too many requests for this {kind}: wait {wait} s and retry", wait)


def device_admission(limiter: RateLimiter, clock: Clock, device_id: str, limit: int) -> Future[None]:
    """:func:`check` for a device, started on a background thread: the edge request overlaps the
    write with the face engine and waits for it (``.result()``) before it writes anything, so a
    request over the limit leaves nothing but its refusal."""
    return _BACKGROUND.submit(check, limiter, clock, kind=DEVICE, principal_id=device_id, limit=limit)


def check_failed_auth_allowed(limiter: RateLimiter, clock: Clock, source: str, limit: int) -> None:
    """Refuse ``source`` if it has had ``limit`` failed sign-ins this minute (call before checking
    credentials; it reads the count and does not add to it).

    Raises
    ------
    TooManyRequestsError
        The source used up its failure budget; ``retry_after`` is the seconds until the minute ends.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a whole number >= 1, not {limit!r}: fix the setting")
    now = clock.now()
    if limiter.peek(_failure_key(source), WINDOW_SECONDS, now) >= limit:
        raise _too_many_failures(_seconds_left(now))


def record_failed_auth(limiter: RateLimiter, clock: Clock, source: str, limit: int) -> None:
    """Count one failed sign-in of ``source`` (call when its credentials were refused).

    Returns normally while the source is within ``limit`` failures this minute (the caller then
    answers 401); the next attempt is refused by :func:`check_failed_auth_allowed`.

    Raises
    ------
    TooManyRequestsError
        This failure is over the budget (concurrent attempts that all passed the check).
    """
    wait = limiter.hit(_failure_key(source), limit, WINDOW_SECONDS, clock.now())
    if wait is not None:
        raise _too_many_failures(wait)


def _failure_key(source: str) -> str:
    if not source:
        raise ValueError("source must be non-empty: pass the caller's IP address or the key's prefix")
    return f"{_AUTH_FAILURE_PREFIX}:{source}"


def _too_many_failures(wait: int) -> TooManyRequestsError:
    return TooManyRequestsError(f"too many failed sign-in attempts: wait {wait} s and retry", wait)


def _seconds_left(now: datetime) -> int:
    # The same window arithmetic as the limiters' (epoch-aligned minutes): peek gives a count only.
    end = (math.floor(now.timestamp()) // WINDOW_SECONDS + 1) * WINDOW_SECONDS
    return max(1, math.ceil(end - now.timestamp()))
