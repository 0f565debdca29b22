"""Rate limiting counters: fixed windows in DynamoDB (``<prefix>-rate_limits``) and in memory.

Why **fixed windows**: a request costs exactly one write and no read. ``hit`` is one atomic
UpdateItem (``ADD count 1``, ``ReturnValues=ALL_NEW``) on the item of the window that contains
``now``; DynamoDB serialises updates of one item, so concurrent hits never lose a count and the
new count decides at once. A sliding log or a token bucket needs a read and a conditional write
(two round trips, retries on contention) on every request. The price is the known burst at a
window edge (up to twice the limit across two adjacent windows), which is acceptable for
protecting the service from a misbehaving device or key.

Each window is its own item (``bucket`` = ``<key>#<window start epoch>``), so a new window starts
from zero without a reset write, and TTL (``expires``) removes the old ones.
"""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.exceptions import PynamoDBException
from pynamodb.models import Model

from eventface.domain.errors import EventfaceError

if TYPE_CHECKING:
    from eventface.adapters.dynamo_repositories import DynamoTables

#: The model's table in ``dynamo_models.MODELS`` (``<prefix>-rate_limits``).
TABLE: Final = "rate_limits"
# The same values as dynamo_models.DEFAULT_PREFIX and BILLING: dynamo_models registers this model
# in MODELS, so importing from it here would make the two modules import each other.
_DEFAULT_PREFIX: Final = "eventface"
_BILLING: Final = "PAY_PER_REQUEST"
#: A window's item outlives the window by this much before TTL may delete it (TTL is lazy anyway;
#: the bucket key, not ``expires``, decides which window counts).
TTL_SLACK: Final = timedelta(minutes=5)


class RateCounterItem(Model):
    """The request count of one key in one fixed window; ``expires`` (TTL) cleans up."""

    class Meta:
        table_name = f"{_DEFAULT_PREFIX}-{TABLE}"
        billing_mode = _BILLING

    bucket = UnicodeAttribute(hash_key=True)  # <key>#<window start, epoch seconds>
    # Stored as "count"; the Python name differs because ``Model.count`` is pynamodb's own
    # classmethod (a Query count), which an attribute named ``count`` would hide.
    hits = NumberAttribute(attr_name="count")
    expires = TTLAttribute()


def bind_rate_limits(prefix: str) -> None:
    """Point :class:`RateCounterItem` at ``<prefix>-rate_limits`` (what ``dynamo_models.bind`` does
    once the model is in its ``MODELS``)."""
    if not prefix:
        raise ValueError("the table prefix must be a non-empty string (EVENTFACE_TABLE_PREFIX)")
    meta: Any = RateCounterItem.Meta
    meta.table_name = f"{prefix}-{TABLE}"


def window_of(now: datetime, window_seconds: int) -> tuple[int, int]:
    """The fixed window containing ``now``: its start and end, in epoch seconds.

    Raises
    ------
    ValueError
        ``now`` is naive, or ``window_seconds`` is not a positive whole number.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (use the injected Clock, which gives UTC)")
    _require_positive("window_seconds", window_seconds)
    start = math.floor(now.timestamp()) // window_seconds * window_seconds
    return start, start + window_seconds


def seconds_left(now: datetime, window_seconds: int) -> int:
    """Whole seconds from ``now`` to the end of its window, at least 1 (a ``Retry-After``)."""
    _, end = window_of(now, window_seconds)
    return max(1, math.ceil(end - now.timestamp()))


def _require_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, not {value!r}")


def _translate(exc: PynamoDBException, what: str) -> EventfaceError:
    # Imported on use: dynamo_models imports this module (MODELS), and dynamo_repositories
    # imports dynamo_models, so a module-level import would close the cycle.
    from eventface.adapters.dynamo_repositories import _translate as translate

    return translate(exc, what)


def _require_key(key: str) -> None:
    if not key:
        raise ValueError("the rate limit key must be a non-empty string (e.g. 'device:<id>')")


class DynamoRateLimiter:
    """:class:`RateLimiter` on DynamoDB: one UpdateItem per hit, one consistent GetItem per peek."""

    def __init__(self, tables: DynamoTables) -> None:
        self._tables = tables
        # Until dynamo_models.MODELS names this model, DynamoTables' bind does not reach it.
        bind_rate_limits(tables.prefix)

    def hit(self, key: str, limit: int, window_seconds: int, now: datetime) -> int | None:
        """See :meth:`RateLimiter.hit`; DependencyError if DynamoDB fails."""
        _require_key(key)
        _require_positive("limit", limit)
        start, end = window_of(now, window_seconds)
        item = RateCounterItem(f"{key}#{start}")
        try:
            item.update(
                actions=[
                    RateCounterItem.hits.add(1),
                    RateCounterItem.expires.set(datetime.fromtimestamp(end, tz=UTC) + TTL_SLACK),
                ]
            )
        except PynamoDBException as exc:
            raise _translate(exc, "counting the request for rate limiting") from exc
        if int(item.hits) <= limit:
            return None
        return seconds_left(now, window_seconds)

    def peek(self, key: str, window_seconds: int, now: datetime) -> int:
        """See :meth:`RateLimiter.peek`; DependencyError if DynamoDB fails."""
        _require_key(key)
        start, _ = window_of(now, window_seconds)
        try:
            item = RateCounterItem.get(f"{key}#{start}", consistent_read=True)
        except RateCounterItem.DoesNotExist:
            return 0
        except PynamoDBException as exc:
            raise _translate(exc, "reading the rate limit counter") from exc
        return int(item.hits)


class InMemoryRateLimiter:
    """:class:`RateLimiter` in memory (tests, fakes, the offline demo); thread-safe.

    Keeps only each key's current window, so memory grows with the number of keys, not of windows.
    """

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, int]] = {}  # key -> (window start, count)
        self._lock = threading.Lock()

    def hit(self, key: str, limit: int, window_seconds: int, now: datetime) -> int | None:
        """See :meth:`RateLimiter.hit`."""
        _require_key(key)
        _require_positive("limit", limit)
        start, _ = window_of(now, window_seconds)
        with self._lock:
            stored_start, count = self._windows.get(key, (start, 0))
            count = count + 1 if stored_start == start else 1
            self._windows[key] = (start, count)
        return None if count <= limit else seconds_left(now, window_seconds)

    def peek(self, key: str, window_seconds: int, now: datetime) -> int:
        """See :meth:`RateLimiter.peek`."""
        _require_key(key)
        start, _ = window_of(now, window_seconds)
        with self._lock:
            stored_start, count = self._windows.get(key, (start, 0))
        return count if stored_start == start else 0
