"""CRM callout rules with a fake clock and a scripted transport: breaker, cache, deadline, mapping."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from eventface.adapters.crm import (
    WEBHOOK_HAS_NO_PROFILES,
    BreakerState,
    CircuitBreaker,
    HttpAnswer,
    ProfileCache,
    RestCrmConnector,
    WebhookCrmConnector,
    mapped_fields,
)
from eventface.domain.errors import DependencyError, InvalidInputError
from eventface.domain.vip import ProfileLookup
from eventface.ports_vip import CrmGateway

URL = "https://crm.example/api/customers/{customer_id}"
FIELD_MAP = {"name": "data.profile.fullName", "tier": "data.membership.level", "email": "data.emails.0"}
PROFILE = {
    "data": {
        "profile": {"fullName": "Ada Lovelace"},
        "membership": {"level": "gold"},
        "emails": ["ada@example.com"],
    }
}


class FakeClock:
    """Monotonic seconds that only move when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# A scripted step: an answer after some latency, or "hang" (no answer before the attempt's timeout),
# or an exception raised at once.
Step = HttpAnswer | str | BaseException


@dataclass
class ScriptedTransport:
    """Plays ``steps`` in order; records each request's URL, headers and the timeout it was given."""

    clock: FakeClock
    steps: list[Step]
    latency_s: float = 0.05
    calls: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def __call__(self, request: urllib.request.Request, timeout_s: float) -> HttpAnswer:
        self.calls.append((request.full_url, dict(request.header_items()), timeout_s))
        step = self.steps.pop(0) if self.steps else HttpAnswer(200, json.dumps(PROFILE).encode())
        if step == "hang":
            self.clock.advance(timeout_s)
            raise TimeoutError("timed out")
        if isinstance(step, BaseException):
            raise step
        assert isinstance(step, HttpAnswer)
        self.clock.advance(self.latency_s)
        return step


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_connector(
    clock: FakeClock,
) -> Callable[..., tuple[RestCrmConnector, ScriptedTransport, list[float]]]:
    """Builds a connector on the fake clock; returns it with its transport and the recorded pauses."""

    def make(
        steps: list[Step], *, random_value: float = 1.0, **options: object
    ) -> tuple[RestCrmConnector, ScriptedTransport, list[float]]:
        transport = ScriptedTransport(clock, list(steps))
        pauses: list[float] = []

        def sleep(seconds: float) -> None:
            pauses.append(seconds)
            clock.advance(seconds)

        settings: dict[str, object] = {"auth_value": "Bearer t0ken", "timeout_s": 1.0, "retries": 3}
        settings.update(options)
        connector = RestCrmConnector(
            URL,
            FIELD_MAP,
            transport=transport,
            sleep=sleep,
            random=lambda: random_value,
            clock=clock,
            **settings,  # type: ignore[arg-type]
        )
        return connector, transport, pauses

    return make


def _state(breaker: CircuitBreaker) -> BreakerState:
    """The breaker's state, read afresh (mypy would keep a narrowed property across calls)."""
    return breaker.state


def _ok(document: object = PROFILE) -> HttpAnswer:
    return HttpAnswer(200, json.dumps(document).encode())


# --- circuit breaker -------------------------------------------------------------------------------


def test_circuit_breaker_opens_after_consecutive_failures(clock: FakeClock) -> None:
    # given a breaker that opens after 3 failures
    breaker = CircuitBreaker(failure_threshold=3, cool_down_s=10, clock=clock)
    # when two failures, a success, then three failures happen
    for outcome in ("fail", "fail", "ok", "fail", "fail"):
        assert breaker.allow()
        if outcome == "fail":
            breaker.record_failure()
        else:
            breaker.record_success()
    # then the success reset the count: still closed until the third consecutive failure
    assert _state(breaker) is BreakerState.CLOSED
    assert breaker.allow()
    breaker.record_failure()
    assert _state(breaker) is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_in_s() == pytest.approx(10)


def test_circuit_breaker_half_open_lets_one_probe_and_closes_on_success(clock: FakeClock) -> None:
    # given an open breaker
    breaker = CircuitBreaker(failure_threshold=1, cool_down_s=10, clock=clock)
    breaker.record_failure()
    clock.advance(9.9)
    assert not breaker.allow()
    # when the cool-down is over
    clock.advance(0.1)
    # then exactly one probe goes through
    assert _state(breaker) is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()
    # and its success closes the breaker
    breaker.record_success()
    assert _state(breaker) is BreakerState.CLOSED
    assert breaker.allow()
    assert breaker.allow()


def test_circuit_breaker_failed_probe_reopens_for_another_cool_down(clock: FakeClock) -> None:
    # given a half-open breaker
    breaker = CircuitBreaker(failure_threshold=2, cool_down_s=5, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.advance(5)
    assert breaker.allow()
    # when the probe fails
    breaker.record_failure()
    # then it is open again for a full cool-down
    assert _state(breaker) is BreakerState.OPEN
    clock.advance(4.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.allow()


@pytest.mark.parametrize(("threshold", "cool_down"), [(0, 1.0), (1, 0.0)])
def test_circuit_breaker_refuses_bad_settings(threshold: int, cool_down: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        CircuitBreaker(failure_threshold=threshold, cool_down_s=cool_down)


# --- profile cache -------------------------------------------------------------------------------


def test_profile_cache_answers_until_ttl_then_forgets(clock: FakeClock) -> None:
    # given a cached lookup with a 60 s TTL
    cache = ProfileCache(clock=clock)
    lookup = ProfileLookup(None, "not_found")
    cache.put("c-1", lookup, 60)
    # when / then it is there just before the TTL and gone at it
    clock.advance(59.9)
    assert cache.get("c-1") == lookup
    clock.advance(0.1)
    assert cache.get("c-1") is None
    assert len(cache) == 0


def test_profile_cache_evicts_least_recently_used_when_full(clock: FakeClock) -> None:
    # given a full cache of two where "a" was read after "b" was stored
    cache = ProfileCache(max_entries=2, clock=clock)
    cache.put("a", ProfileLookup(None, "not_found"), 60)
    cache.put("b", ProfileLookup(None, "not_found"), 60)
    assert cache.get("a") is not None
    # when a third customer is stored
    cache.put("c", ProfileLookup(None, "not_found"), 60)
    # then "b" (least recently used) is evicted
    assert len(cache) == 2
    assert cache.get("b") is None
    assert cache.get("a") is not None
    assert cache.get("c") is not None


def test_profile_cache_non_positive_ttl_keeps_nothing(clock: FakeClock) -> None:
    cache = ProfileCache(clock=clock)
    cache.put("a", ProfileLookup(None, "not_found"), 0)
    assert cache.get("a") is None


# --- retries, backoff and the deadline ------------------------------------------------------------


def test_lookup_retries_5xx_with_full_jitter_backoff(make_connector) -> None:
    # given a CRM that fails twice, then answers; random() gives its top value
    connector, transport, pauses = make_connector(
        [HttpAnswer(503, b""), HttpAnswer(500, b""), _ok()], random_value=0.5, backoff_base_s=0.1
    )
    # when
    result = connector.lookup("c-1", deadline_s=5.0)
    # then the third attempt succeeds after pauses of random * base * 2 ** (n - 1)
    assert result.status == "ok"
    assert len(transport.calls) == 3
    assert pauses == pytest.approx([0.05, 0.1])


def test_lookup_backoff_is_capped(make_connector) -> None:
    connector, _, pauses = make_connector(
        [HttpAnswer(500, b"")] * 4, random_value=0.99, retries=5, backoff_base_s=1.0, backoff_max_s=1.5
    )
    connector.lookup("c-1", deadline_s=60.0)
    assert pauses == pytest.approx([0.99, 1.485, 1.485, 1.485])


@pytest.mark.parametrize("deadline_s", [0.05, 0.3, 0.5, 1.2, 2.5])
@pytest.mark.parametrize("random_value", [0.0, 0.5, 0.999])
@pytest.mark.parametrize("failure", ["hang", "5xx"])
def test_lookup_never_exceeds_the_deadline(
    make_connector, clock: FakeClock, deadline_s: float, random_value: float, failure: str
) -> None:
    # given a CRM that never answers (or always answers 500) and generous retries
    steps: list[Step] = ["hang" if failure == "hang" else HttpAnswer(500, b"")] * 10
    connector, transport, pauses = make_connector(
        steps, random_value=random_value, retries=10, timeout_s=1.0, backoff_base_s=0.2
    )
    started = clock()
    # when
    result = connector.lookup("c-1", deadline_s=deadline_s)
    # then the answer is "unavailable" and the time spent (attempts + pauses) stays within the deadline
    assert result.status == "unavailable"
    assert clock() - started <= deadline_s + 1e-9
    assert result.elapsed_ms <= deadline_s * 1000 + 1e-6
    spent = 0.0
    for (_, _, timeout_s), pause in zip(transport.calls, [*pauses, 0.0], strict=False):
        assert timeout_s <= deadline_s - spent + 1e-9
        spent += timeout_s if failure == "hang" else transport.latency_s
        spent += pause
    assert "attempt" in result.reason


def test_lookup_gives_up_at_once_when_the_pause_would_not_fit(make_connector, clock: FakeClock) -> None:
    # given a 0.3 s deadline and a backoff that would wait 0.5 s
    connector, transport, pauses = make_connector(
        [HttpAnswer(502, b"")] * 3, random_value=1.0, backoff_base_s=0.5
    )
    started = clock()
    # when
    result = connector.lookup("c-1", deadline_s=0.3)
    # then it answers after one attempt without sleeping
    assert result.status == "unavailable"
    assert len(transport.calls) == 1
    assert pauses == []
    assert clock() - started == pytest.approx(transport.latency_s)
    assert "answered 502 (after 1 attempt)" in result.reason


@pytest.mark.parametrize("status", [400, 401, 403, 409, 429])
def test_lookup_other_4xx_is_unavailable_without_retry(make_connector, status: int) -> None:
    connector, transport, _ = make_connector([HttpAnswer(status, b"")])
    result = connector.lookup("c-1", deadline_s=5.0)
    assert result.status == "unavailable"
    assert str(status) in result.reason
    assert len(transport.calls) == 1
    assert _state(connector.breaker) is BreakerState.CLOSED


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError("refused"),
        urllib.error.URLError(ConnectionRefusedError("refused")),
        urllib.error.URLError(TimeoutError("timed out")),
    ],
)
def test_lookup_connection_errors_are_retried(make_connector, error: BaseException) -> None:
    connector, transport, _ = make_connector([error, _ok()])
    result = connector.lookup("c-1", deadline_s=5.0)
    assert result.status == "ok"
    assert len(transport.calls) == 2


def test_lookup_not_found_is_cached_briefly(make_connector, clock: FakeClock) -> None:
    # given a CRM that does not know the customer
    connector, transport, _ = make_connector([HttpAnswer(404, b"")], not_found_ttl_s=30)
    # when asked twice within the negative TTL, and once after
    first = connector.lookup("c-1", deadline_s=1.0)
    second = connector.lookup("c-1", deadline_s=1.0)
    clock.advance(30)
    third = connector.lookup("c-1", deadline_s=1.0)
    # then
    assert (first.status, first.from_cache) == ("not_found", False)
    assert (second.status, second.from_cache) == ("not_found", True)
    assert (third.status, third.from_cache) == ("ok", False)
    assert len(transport.calls) == 2


def test_lookup_unavailable_is_not_cached(make_connector) -> None:
    connector, transport, _ = make_connector([HttpAnswer(500, b"")], retries=1)
    assert connector.lookup("c-1", deadline_s=1.0).status == "unavailable"
    assert connector.lookup("c-1", deadline_s=1.0).status == "ok"
    assert len(transport.calls) == 2


def test_lookup_open_breaker_answers_without_calling(make_connector) -> None:
    # given a breaker that opens after two failed attempts
    breaker = CircuitBreaker(failure_threshold=2, cool_down_s=30)
    connector, transport, _ = make_connector([HttpAnswer(500, b"")] * 2, retries=3, breaker=breaker)
    # when the first lookup fails twice (opening the breaker) and a second lookup follows
    first = connector.lookup("c-1", deadline_s=5.0)
    second = connector.lookup("c-2", deadline_s=5.0)
    # then the first stopped retrying when the breaker opened and the second made no call
    assert len(transport.calls) == 2
    assert "answered 500; the CRM is failing" in first.reason
    assert second.status == "unavailable"
    assert second.reason == "the CRM is failing: calls are paused for 30 s"


def test_lookup_url_encodes_the_customer_id_and_sends_the_auth_header(make_connector) -> None:
    connector, transport, _ = make_connector([_ok()])
    connector.lookup("a/b c?d", deadline_s=1.0)
    url, headers, _ = transport.calls[0]
    assert url == "https://crm.example/api/customers/a%2Fb%20c%3Fd"
    assert headers["Authorization"] == "Bearer t0ken"


def test_lookup_empty_customer_id_is_a_caller_error(make_connector) -> None:
    connector, _, _ = make_connector([])
    with pytest.raises(InvalidInputError, match="customer_id is empty"):
        connector.lookup("", deadline_s=1.0)


def test_lookup_with_no_time_left_makes_no_call(make_connector) -> None:
    connector, transport, _ = make_connector([])
    result = connector.lookup("c-1", deadline_s=0.0)
    assert result.status == "unavailable"
    assert "no time left" in result.reason
    assert transport.calls == []


# --- field mapping --------------------------------------------------------------------------------


def test_lookup_maps_the_profile(make_connector) -> None:
    connector, _, _ = make_connector([_ok()])
    result = connector.lookup("c-1", deadline_s=1.0)
    assert result.status == "ok"
    assert result.reason == ""
    assert result.profile is not None
    assert result.profile.customer_id == "c-1"
    assert (result.profile.name, result.profile.tier) == ("Ada Lovelace", "gold")
    assert result.profile.fields == {"email": "ada@example.com"}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"data": {"profile": {"fullName": "Ada"}}}, {"name": "Ada"}),
        ({"data": {"profile": {"fullName": None}, "membership": {"level": 3}}}, {"tier": "3"}),
        ({"data": {"membership": {"level": True}, "emails": []}}, {"tier": "true"}),
        ({"data": {"profile": {"fullName": {"first": "Ada"}}, "emails": ["x", "y"]}}, {"email": "x"}),
        ({"data": {"profile": "Ada"}}, {}),
        ({"data": [1, 2]}, {}),
        (["not", "an", "object"], {}),
        ("just text", {}),
        (None, {}),
        ({"data": {"emails": {"0": "keyed"}}}, {"email": "keyed"}),
    ],
)
def test_mapped_fields_missing_or_odd_values_are_absent(document: object, expected: dict[str, str]) -> None:
    assert mapped_fields(document, FIELD_MAP) == expected


def test_lookup_malformed_json_gives_a_profile_without_fields_and_is_not_cached(make_connector) -> None:
    connector, transport, _ = make_connector([HttpAnswer(200, b"{not json"), HttpAnswer(200, b"\xff\xfe")])
    first = connector.lookup("c-1", deadline_s=1.0)
    second = connector.lookup("c-1", deadline_s=1.0)
    for result in (first, second):
        assert result.status == "ok"
        assert result.profile is not None
        assert (result.profile.name, result.profile.tier, result.profile.fields) == (None, None, {})
        assert "not valid JSON" in result.reason
    assert len(transport.calls) == 2


def test_lookup_profile_is_cached_until_ttl(make_connector, clock: FakeClock) -> None:
    connector, transport, _ = make_connector([_ok(), _ok()], cache_ttl_s=300)
    first = connector.lookup("c-1", deadline_s=1.0)
    clock.advance(299)
    second = connector.lookup("c-1", deadline_s=1.0)
    assert second.from_cache
    assert second.profile == first.profile
    assert second.elapsed_ms == 0.0
    clock.advance(1)
    assert not connector.lookup("c-1", deadline_s=1.0).from_cache
    assert len(transport.calls) == 2


@pytest.mark.parametrize(
    ("template", "options"),
    [
        ("ftp://crm.example/{customer_id}", {}),
        ("https://crm.example/customers", {}),
        (URL, {"secret_id": "s", "auth_value": "v"}),
        (URL, {"retries": 0}),
        (URL, {"timeout_s": 0}),
    ],
)
def test_rest_connector_refuses_bad_settings(template: str, options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"must|give secret_id"):
        RestCrmConnector(template, FIELD_MAP, **options)  # type: ignore[arg-type]


# --- webhook ------------------------------------------------------------------------------------


def test_webhook_lookup_is_unavailable_at_once() -> None:
    gateway: CrmGateway = WebhookCrmConnector("https://crm.example/hook", b"k")
    result = gateway.lookup("c-1", deadline_s=1.0)
    assert (result.status, result.reason, result.profile) == ("unavailable", WEBHOOK_HAS_NO_PROFILES, None)


@pytest.mark.parametrize(
    ("step", "message"),
    [(HttpAnswer(500, b""), "answered 500"), (ConnectionRefusedError("refused"), "could not be reached")],
)
def test_webhook_notify_failure_raises_dependency_error(step: Step, message: str) -> None:
    transport = ScriptedTransport(FakeClock(), [step])
    connector = WebhookCrmConnector("https://crm.example/hook?token=x", b"k", transport=transport)
    with pytest.raises(DependencyError, match=message) as raised:
        connector.notify({"customer_id": "c-1"})
    assert "token" not in str(raised.value)
    assert "retry later" in str(raised.value)


def test_webhook_notify_refuses_a_sighting_that_is_not_json() -> None:
    connector = WebhookCrmConnector(
        "https://crm.example/hook", b"k", transport=ScriptedTransport(FakeClock(), [])
    )
    with pytest.raises(InvalidInputError, match="cannot be sent as JSON"):
        connector.notify({"at": object()})
