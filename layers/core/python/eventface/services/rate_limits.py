"""Rate limits: requests per device and per management API key, and failed sign-ins per source.

Every limit is a sliding window of one minute (see :mod:`eventface.adapters.rate_limit`): no
calendar-minute reset, so a burst across a minute boundary is refused like any other burst.
A refusal is a :class:`TooManyRequestsError`, which the APIs answer with 429 and ``Retry-After``.

**Admission comes first.** The APIs count a device's or key's request right after authenticating
it, before the body is parsed or the face engine runs: every authenticated request counts, a
garbage body as much as a good photo, and a request over the limit costs one counter write.

Failed authentication is counted per *source* (the caller's IP address), not per principal: a
failed attempt names no principal. A source over its failure budget is refused before its
credentials are looked up: :func:`screen_source` answers from what this process already knows
(no I/O, on every authenticated route), :func:`check_failed_auth_allowed` also reads the shared
counter (one read, on the activation route, where codes could be guessed). Successful requests
are never counted, so good sources are unaffected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from eventface.domain.errors import TooManyRequestsError
from eventface.ports import Clock
from eventface.ports_access import RateLimiter

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
    """Count one request of ``principal_id`` (a device or API key id) against ``limit`` per minute
    (call it before any work the request asks for).

    Parameters
    ----------
    kind
        What the principal is, :data:`DEVICE` or :data:`API_KEY`; part of the counter's key and
        of the message.

    Raises
    ------
    TooManyRequestsError
        Over the limit in the last minute; ``retry_after`` is the seconds until a request would
        be admitted again.
    """
    if not kind or not principal_id:
        raise ValueError("kind and principal_id must be non-empty: pass the authenticated principal")
    wait = limiter.hit(f"{kind}:{principal_id}", limit, WINDOW_SECONDS, clock.now())
    if wait is not None:
        raise TooManyRequestsError(f"too many requests for this {kind}: wait {wait} s and retry", wait)


def screen_source(limiter: RateLimiter, clock: Clock, source: str) -> None:
    """Refuse ``source`` if this process already saw it go over its failed sign-in budget (no I/O:
    call it before looking up credentials, on every route).

    Raises
    ------
    TooManyRequestsError
        The source is over its failure budget; ``retry_after`` is the seconds until it is not.
    """
    wait = limiter.blocked(_failure_key(source), clock.now())
    if wait is not None:
        raise _too_many_failures(wait)


def check_failed_auth_allowed(limiter: RateLimiter, clock: Clock, source: str, limit: int) -> None:
    """Refuse ``source`` if it has had ``limit`` failed sign-ins in the last minute (call before
    checking credentials; it reads the shared count and does not add to it).

    Raises
    ------
    TooManyRequestsError
        The source used up its failure budget; ``retry_after`` is the seconds until it has one.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a whole number >= 1, not {limit!r}: fix the setting")
    wait = limiter.peek(_failure_key(source), limit, WINDOW_SECONDS, clock.now())
    if wait is not None:
        raise _too_many_failures(wait)


def record_failed_auth(limiter: RateLimiter, clock: Clock, source: str, limit: int) -> None:
    """Count one failed sign-in of ``source`` (call when its credentials were refused).

    Returns normally while the source is within ``limit`` failures in the last minute (the caller
    then answers 401); once over, this process refuses the source in :func:`screen_source`
    without I/O until its wait is over.

    Raises
    ------
    TooManyRequestsError
        This failure is over the budget: answer 429 (this process now refuses the source early).
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
