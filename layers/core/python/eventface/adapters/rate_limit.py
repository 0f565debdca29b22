"""Rate limiting counters: sliding windows in DynamoDB (``<prefix>-rate_limits``) and in memory.

Why a **sliding window counter**: a fixed window (one counter per calendar minute) lets a burst at
the end of one minute and another at the start of the next through: twice the limit in two
seconds. Here each key keeps the count of its current window and of the window before, and a
request is admitted while

    previous x (1 - elapsed / window) + current <= limit

(``elapsed``: seconds since the current window started), the usual approximation of a true
sliding window that needs two numbers instead of a log of timestamps. A burst across the
boundary is refused: the previous window's requests still weigh almost fully a second later.

Cost: in DynamoDB one item per key holds ``window_start``, ``count`` and ``previous``; a request
is **one UpdateItem** (``ADD count 1`` on condition that the item is in the current window,
``ALL_NEW`` returned), and only the first request of a new window needs a second one (the failed
condition returns the old item, ``ALL_OLD``, and a conditional ``SET`` rolls the window over).
Concurrent hits never lose a count (DynamoDB serialises updates of one item). Every hit is counted,
refused ones included, until this process knows the key is over its limit: then it answers from
memory (no I/O) until the computed wait is over, so a flood costs nothing but its refusals.
``expires`` (TTL) removes the items of keys that went quiet.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.models import Model

from eventface.domain.errors import DependencyError

if TYPE_CHECKING:
    from eventface.adapters.dynamo_repositories import DynamoTables

#: The model's table in ``dynamo_models.MODELS`` (``<prefix>-rate_limits``).
TABLE: Final = "rate_limits"
# The same values as dynamo_models.DEFAULT_PREFIX and BILLING: dynamo_models registers this model
# in MODELS, so importing from it here would make the two modules import each other.
_DEFAULT_PREFIX: Final = "eventface"
_BILLING: Final = "PAY_PER_REQUEST"
#: A key's item outlives its two windows by this much before TTL may delete it (TTL is lazy anyway;
#: ``window_start``, not ``expires``, decides which counts apply).
TTL_SLACK: Final = timedelta(minutes=5)
#: Rounds of "count, else roll the window over" lost to concurrent rollovers before giving up.
_ROUNDS: Final = 4
#: Local refusals kept before expired ones are dropped (memory stays bounded under many keys).
_MAX_LOCAL_BLOCKS: Final = 10_000
#: Float slack in the admission test (counts are whole; weights are not).
_EPSILON: Final = 1e-9


class RateCounterItem(Model):
    """The request counts of one key: its current window and the one before; ``expires`` (TTL)
    cleans up keys that went quiet."""

    class Meta:
        table_name = f"{_DEFAULT_PREFIX}-{TABLE}"
        billing_mode = _BILLING

    bucket = UnicodeAttribute(hash_key=True)  # the key, e.g. "device:<id>"
    # Stored as "count"; the Python name differs because ``Model.count`` is pynamodb's own
    # classmethod (a Query count), which an attribute named ``count`` would hide.
    hits = NumberAttribute(attr_name="count")
    window_start = NumberAttribute()  # epoch seconds
    previous = NumberAttribute(default=0)  # the count of the window before ``window_start``
    expires = TTLAttribute()


def bind_rate_limits(prefix: str) -> None:
    """Point :class:`RateCounterItem` at ``<prefix>-rate_limits`` (what ``dynamo_models.bind`` does
    once the model is in its ``MODELS``)."""
    if not prefix:
        raise ValueError("the table prefix must be a non-empty string (EVENTFACE_TABLE_PREFIX)")
    meta: Any = RateCounterItem.Meta
    meta.table_name = f"{prefix}-{TABLE}"


def window_of(now: datetime, window_seconds: int) -> tuple[int, int]:
    """The window containing ``now``: its start and end, in epoch seconds.

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


@dataclass(frozen=True, slots=True)
class Counts:
    """A key's counts as of ``now``: the current window's and the previous window's."""

    previous: int
    current: int
    elapsed: float  # seconds since the current window started
    window_seconds: int

    @property
    def weighted(self) -> float:
        """The sliding window's estimate of the requests in the last ``window_seconds``."""
        weight = min(1.0, max(0.0, 1.0 - self.elapsed / self.window_seconds))
        return self.previous * weight + self.current

    def admits(self, limit: int, extra: int = 0) -> bool:
        """Whether the estimate, with ``extra`` more requests, is at most ``limit``."""
        return self.weighted + extra <= limit + _EPSILON

    def wait(self, limit: int) -> int:
        """Whole seconds (at least 1) until one more request would be admitted, if none arrives
        meanwhile: later in this window, as the previous window's weight fades, or in the next."""
        w, elapsed = self.window_seconds, min(max(self.elapsed, 0.0), float(self.window_seconds))
        if self.current + 1 <= limit and self.previous > 0:
            # previous x (1 - (elapsed + t) / w) + current + 1 <= limit
            t = w * (1.0 - (limit - self.current - 1) / self.previous) - elapsed
            if t <= w - elapsed:
                return max(1, math.ceil(t - _EPSILON))
        # In the next window this one's count is the previous: current x (1 - t / w) + 1 <= limit.
        fade = max(0.0, w * (1.0 - (limit - 1) / self.current)) if self.current else 0.0
        return max(1, math.ceil(w - elapsed + fade - _EPSILON))


def _counts(start: int, previous: int, current: int, now: datetime, window_seconds: int) -> Counts:
    return Counts(previous, current, now.timestamp() - start, window_seconds)


def _decide(counts: Counts, limit: int, extra: int) -> int | None:
    return None if counts.admits(limit, extra) else counts.wait(limit)


def _require_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, not {value!r}")


def _require_key(key: str) -> None:
    if not key:
        raise ValueError("the rate limit key must be a non-empty string (e.g. 'device:<id>')")


def _check(key: str, limit: int, window_seconds: int, now: datetime) -> int:
    _require_key(key)
    _require_positive("limit", limit)
    start, _ = window_of(now, window_seconds)
    return start


class _LocalBlocks:
    """Keys this process saw refused, until when (epoch seconds): answered without I/O."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, key: str, now: datetime) -> int | None:
        with self._lock:
            until = self._until.get(key)
        if until is None or now.timestamp() >= until:
            return None
        return max(1, math.ceil(until - now.timestamp() - _EPSILON))

    def remember(self, key: str, now: datetime, wait: int | None) -> int | None:
        if wait is not None:
            with self._lock:
                if len(self._until) >= _MAX_LOCAL_BLOCKS:
                    stamp = now.timestamp()
                    self._until = {k: u for k, u in self._until.items() if u > stamp}
                self._until[key] = now.timestamp() + wait
        return wait


class DynamoRateLimiter:
    """:class:`RateLimiter` on DynamoDB: one UpdateItem per counted hit (two on the first hit of a
    window), one consistent GetItem per peek; refusals this process saw cost no I/O."""

    def __init__(self, tables: DynamoTables) -> None:
        self._tables = tables
        self._blocks = _LocalBlocks()
        # Until dynamo_models.MODELS names this model, DynamoTables' bind does not reach it.
        bind_rate_limits(tables.prefix)

    @staticmethod
    def _table() -> str:
        return str(RateCounterItem.Meta.table_name)

    def hit(self, key: str, limit: int, window_seconds: int, now: datetime) -> int | None:
        """See :meth:`RateLimiter.hit`; DependencyError if DynamoDB fails."""
        start = _check(key, limit, window_seconds, now)
        known = self._blocks.wait(key, now)
        if known is not None:
            return known
        client = self._tables.connection.client
        names = {"#c": "count", "#s": "window_start", "#p": "previous", "#e": "expires"}
        for _ in range(_ROUNDS):
            expires = {"N": str(start + 2 * window_seconds + int(TTL_SLACK.total_seconds()))}
            try:
                answer = client.update_item(
                    TableName=self._table(),
                    Key={"bucket": {"S": key}},
                    UpdateExpression="ADD #c :one SET #e = :expires",
                    ConditionExpression="#s = :start",
                    ExpressionAttributeNames={"#c": "count", "#s": "window_start", "#e": "expires"},
                    ExpressionAttributeValues={
                        ":one": {"N": "1"},
                        ":start": {"N": str(start)},
                        ":expires": expires,
                    },
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                item = answer["Attributes"]
                counts = _counts(
                    start, _number(item, "previous"), _number(item, "count"), now, window_seconds
                )
                return self._blocks.remember(key, now, _decide(counts, limit, 0))
            except ClientError as exc:
                if _error_code(exc) != "ConditionalCheckFailedException":
                    raise _failure(exc, "counting the request for rate limiting") from exc
                old = exc.response.get("Item")
            except BotoCoreError as exc:
                raise _failure(exc, "counting the request for rate limiting") from exc
            # A new window for this key (or its first request): roll the counts over.
            old_start = _number(old, "window_start") if old and "window_start" in old else None
            if old_start is not None and old_start > start:
                start = old_start  # another process's clock is ahead: count in its window
                continue
            previous = _number(old, "count") if old_start == start - window_seconds else 0
            condition = "attribute_not_exists(#s)" if old_start is None else "#s = :old"
            values = {
                ":start": {"N": str(start)},
                ":one": {"N": "1"},
                ":previous": {"N": str(previous)},
                ":expires": expires,
            }
            if old_start is not None:
                values[":old"] = {"N": str(old_start)}
            try:
                client.update_item(
                    TableName=self._table(),
                    Key={"bucket": {"S": key}},
                    UpdateExpression="SET #s = :start, #c = :one, #p = :previous, #e = :expires",
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                )
            except ClientError as exc:
                if _error_code(exc) == "ConditionalCheckFailedException":
                    continue  # another request rolled the window over first: count in it
                raise _failure(exc, "counting the request for rate limiting") from exc
            except BotoCoreError as exc:
                raise _failure(exc, "counting the request for rate limiting") from exc
            counts = _counts(start, previous, 1, now, window_seconds)
            return self._blocks.remember(key, now, _decide(counts, limit, 0))
        raise DependencyError(
            "counting the request for rate limiting kept conflicting in DynamoDB: retry later"
        )

    def peek(self, key: str, limit: int, window_seconds: int, now: datetime) -> int | None:
        """See :meth:`RateLimiter.peek`; DependencyError if DynamoDB fails."""
        start = _check(key, limit, window_seconds, now)
        known = self._blocks.wait(key, now)
        if known is not None:
            return known
        try:
            answer = self._tables.connection.client.get_item(
                TableName=self._table(), Key={"bucket": {"S": key}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise _failure(exc, "reading the rate limit counter") from exc
        counts = _shifted(answer.get("Item"), start, now, window_seconds)
        return self._blocks.remember(key, now, _decide(counts, limit, 1))

    def blocked(self, key: str, now: datetime) -> int | None:
        """See :meth:`RateLimiter.blocked` (memory only)."""
        _require_key(key)
        return self._blocks.wait(key, now)


def _number(item: dict[str, Any] | None, name: str) -> int:
    if not item or name not in item:
        return 0
    return int(item[name]["N"])


def _shifted(item: dict[str, Any] | None, start: int, now: datetime, window_seconds: int) -> Counts:
    """The counts as of ``now`` from a stored item that may be of an earlier window."""
    if not item:
        return _counts(start, 0, 0, now, window_seconds)
    stored = _number(item, "window_start")
    if stored >= start:
        return _counts(stored, _number(item, "previous"), _number(item, "count"), now, window_seconds)
    if stored == start - window_seconds:
        return _counts(start, _number(item, "count"), 0, now, window_seconds)
    return _counts(start, 0, 0, now, window_seconds)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _failure(exc: ClientError | BotoCoreError, what: str) -> DependencyError:
    code = _error_code(exc) if isinstance(exc, ClientError) else ""
    if code == "ResourceNotFoundException":
        return DependencyError(f"{what}: the table does not exist; create the tables (create_tables) first")
    return DependencyError(f"{what} failed in DynamoDB ({code or type(exc).__name__}): retry later")


class InMemoryRateLimiter:
    """:class:`RateLimiter` in memory (tests, fakes, the offline demo); thread-safe; the same
    sliding window and the same local refusals as :class:`DynamoRateLimiter`."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, int, int]] = {}  # key -> (window start, previous, count)
        self._blocks = _LocalBlocks()
        self._lock = threading.Lock()

    def _shift(self, key: str, start: int, window_seconds: int) -> tuple[int, int, int]:
        stored_start, previous, count = self._windows.get(key, (start, 0, 0))
        if stored_start >= start:
            return stored_start, previous, count
        if stored_start == start - window_seconds:
            return start, count, 0
        return start, 0, 0

    def hit(self, key: str, limit: int, window_seconds: int, now: datetime) -> int | None:
        """See :meth:`RateLimiter.hit`."""
        start = _check(key, limit, window_seconds, now)
        known = self._blocks.wait(key, now)
        if known is not None:
            return known
        with self._lock:
            start, previous, count = self._shift(key, start, window_seconds)
            self._windows[key] = (start, previous, count + 1)
        counts = _counts(start, previous, count + 1, now, window_seconds)
        return self._blocks.remember(key, now, _decide(counts, limit, 0))

    def peek(self, key: str, limit: int, window_seconds: int, now: datetime) -> int | None:
        """See :meth:`RateLimiter.peek`."""
        start = _check(key, limit, window_seconds, now)
        known = self._blocks.wait(key, now)
        if known is not None:
            return known
        with self._lock:
            start, previous, count = self._shift(key, start, window_seconds)
        counts = _counts(start, previous, count, now, window_seconds)
        return self._blocks.remember(key, now, _decide(counts, limit, 1))

    def blocked(self, key: str, now: datetime) -> int | None:
        """See :meth:`RateLimiter.blocked`."""
        _require_key(key)
        return self._blocks.wait(key, now)

    def counted(self, key: str) -> int:
        """How many hits the current window of ``key`` holds (for tests)."""
        with self._lock:
            return self._windows.get(key, (0, 0, 0))[2]
