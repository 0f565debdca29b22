"""CRM callouts for VIP detection: fetch a guest's profile, or tell the venue's CRM about a sighting.

When a venue recognises a VIP member the ``vip_enrich`` consumer asks the venue's CRM for the guest's
profile through a :class:`CrmGateway`. The staff alert must go out within the consumer's deadline
whether or not the CRM answers, so :meth:`CrmGateway.lookup` never raises for CRM trouble: a CRM that
is down, slow or refusing us is the status ``"unavailable"`` with a reason, and the alert is sent
marked "profile unavailable".

:class:`RestCrmConnector` reads a JSON profile over HTTP (standard library ``urllib``, no extra
dependency) with

- a per-attempt timeout and retries with exponential backoff and full jitter, all bounded by the
  caller's deadline (an attempt's timeout and a backoff pause never reach past it);
- a :class:`CircuitBreaker`, so a CRM that keeps failing is not called (and waited for) on every
  sighting;
- a :class:`ProfileCache` (TTL, bounded size), so a guest standing in the lobby costs one callout;
- the auth header value read from Secrets Manager and kept for five minutes.

:class:`WebhookCrmConnector` pushes sightings to a CRM that wants to be told (HMAC-signed JSON) and
provides no profiles.

Every call goes through the egress policy (:mod:`eventface.adapters.egress`: public addresses only,
https outside the local stack, no redirects followed); a refused call is ``unavailable`` (or a
failed notification) with the reason, and nothing is sent. :class:`VenueCrmDirectory` uses a
venue's secret only if it is named under the venue's tenant (:mod:`eventface.domain.secrets`).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import random as _random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Final, Literal

from botocore.exceptions import BotoCoreError, ClientError

from eventface import aws
from eventface.adapters.egress import EgressGuard, EgressRefusedError, guard_from_settings
from eventface.domain.errors import DependencyError, InvalidInputError
from eventface.domain.secrets import check_tenant_secret
from eventface.domain.vip import CrmConfig, CrmKind, CrmProfile, ProfileLookup, Venue
from eventface.ports_vip import CrmGateway

#: The auth header value read from Secrets Manager is re-read after this long (rotation).
SECRET_CACHE_SECONDS: Final = 300.0
#: Larger CRM answers are refused: a profile is a few KiB.
MAX_BODY_BYTES: Final = 1024 * 1024
#: An attempt is not started (nor a backoff pause taken) with less budget than this left.
MIN_ATTEMPT_SECONDS: Final = 0.01
WEBHOOK_HAS_NO_PROFILES: Final = "webhook connectors do not provide profiles"


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """Status and body of an HTTP answer, whatever the status."""

    status: int
    body: bytes


#: Sends a request with a timeout in seconds. Raises ``OSError`` (timeouts, refused connections)
#: or ``http.client.HTTPException`` when no answer arrives; any status is an answer.
Transport = Callable[[urllib.request.Request, float], HttpAnswer]


def _send(
    opener: urllib.request.OpenerDirector, request: urllib.request.Request, timeout_s: float
) -> HttpAnswer:
    try:
        with opener.open(request, timeout=timeout_s) as response:
            return HttpAnswer(int(response.status), response.read(MAX_BODY_BYTES + 1))
    except urllib.error.HTTPError as exc:
        # Error bodies are not needed; the status says what happened.
        exc.close()
        return HttpAnswer(exc.code, b"")


def guarded_transport(guard: EgressGuard) -> Transport:
    """A transport whose every connection passes ``guard`` (the composition root's choice).

    It raises :class:`~eventface.adapters.egress.EgressRefusedError` for a refused target, follows
    no redirect (a 3xx is an answer) and uses no proxy.
    """
    opener = guard.opener()

    def send(request: urllib.request.Request, timeout_s: float) -> HttpAnswer:
        return _send(opener, request, timeout_s)

    return send


def urllib_transport(request: urllib.request.Request, timeout_s: float) -> HttpAnswer:
    """Send ``request`` with the standard library, through the deployment's egress policy
    (:func:`~eventface.adapters.egress.guard_from_settings`), and return its answer (any status).

    Parameters
    ----------
    request
        The request to send.
    timeout_s
        Bounds the connection and each read of the socket (not DNS resolution).

    Returns
    -------
    HttpAnswer
        The status and at most ``MAX_BODY_BYTES + 1`` bytes of the body.

    Raises
    ------
    EgressRefusedError
        When the egress policy refuses the target (never sent).
    """
    return _send(guard_from_settings().opener(), request, timeout_s)


class BreakerState(Enum):
    """The states of a :class:`CircuitBreaker`."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Stops calling a dependency after consecutive failures, and probes it again after a cool-down.

    Closed: every call is allowed; ``failure_threshold`` consecutive failures open it. Open: no call
    is allowed until ``cool_down_s`` has passed, then it is half-open. Half-open: exactly one probe
    is allowed; its success closes the breaker, its failure opens it for another cool-down.

    Parameters
    ----------
    failure_threshold
        Consecutive failures that open the breaker (at least 1).
    cool_down_s
        Seconds the breaker stays open before one probe is let through.
    clock
        Monotonic seconds; injectable for tests.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        cool_down_s: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, not {failure_threshold}")
        if cool_down_s <= 0:
            raise ValueError(f"cool_down_s must be positive, not {cool_down_s}")
        self.failure_threshold = failure_threshold
        self.cool_down_s = cool_down_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker whose cool-down is over reports half-open)."""
        with self._lock:
            self._maybe_half_open()
            return self._state

    def allow(self) -> bool:
        """Return whether a call may go out now; in half-open state this takes the one probe.

        Every allowed call must be followed by :meth:`record_success` or :meth:`record_failure`.
        """
        with self._lock:
            self._maybe_half_open()
            if self._state is BreakerState.CLOSED:
                return True
            if self._state is BreakerState.HALF_OPEN and not self._probe_in_flight:
                self._probe_in_flight = True
                return True
            return False

    def record_success(self) -> None:
        """The dependency answered: close the breaker and forget past failures."""
        with self._lock:
            self._state = BreakerState.CLOSED
            self._failures = 0
            self._probe_in_flight = False

    def record_failure(self) -> None:
        """The dependency failed: count it, and open the breaker at the threshold or after a probe."""
        with self._lock:
            self._failures += 1
            if self._state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
                self._state = BreakerState.OPEN
                self._opened_at = self._clock()
            self._probe_in_flight = False

    def retry_in_s(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when not open)."""
        with self._lock:
            if self._state is not BreakerState.OPEN:
                return 0.0
            return max(0.0, self._opened_at + self.cool_down_s - self._clock())

    def _maybe_half_open(self) -> None:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.cool_down_s:
            self._state = BreakerState.HALF_OPEN
            self._probe_in_flight = False


class ProfileCache:
    """Lookups kept for a while, least recently used evicted first when full.

    Parameters
    ----------
    max_entries
        Most customers kept (at least 1).
    clock
        Monotonic seconds; injectable for tests.
    """

    def __init__(self, max_entries: int = 1024, *, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, not {max_entries}")
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, ProfileLookup]] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, customer_id: str) -> ProfileLookup | None:
        """Return the stored lookup of ``customer_id`` if it has not expired, else ``None``."""
        with self._lock:
            entry = self._entries.get(customer_id)
            if entry is None:
                return None
            expires_at, lookup = entry
            if self._clock() >= expires_at:
                del self._entries[customer_id]
                return None
            self._entries.move_to_end(customer_id)
            return lookup

    def put(self, customer_id: str, lookup: ProfileLookup, ttl_s: float) -> None:
        """Keep ``lookup`` for ``ttl_s`` seconds (a non-positive TTL keeps nothing)."""
        if ttl_s <= 0:
            return
        with self._lock:
            self._entries[customer_id] = (self._clock() + ttl_s, lookup)
            self._entries.move_to_end(customer_id)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


_MISSING: Final = object()


def extract_path(document: object, path: str) -> object:
    """Return the value at a dotted ``path`` (``"data.profile.fullName"``, ``"emails.0"``) or a sentinel.

    Dictionary keys are matched exactly; a numeric segment indexes a list. Anything that does not
    resolve gives the module's missing sentinel (test with :func:`mapped_fields`), never an error.
    """
    current = document
    for segment in path.split("."):
        if isinstance(current, dict) and segment in current:
            current = current[segment]
        elif isinstance(current, list) and segment.isdigit() and int(segment) < len(current):
            current = current[int(segment)]
        else:
            return _MISSING
    return current


def mapped_fields(document: object, field_map: Mapping[str, str]) -> dict[str, str]:
    """Map a CRM answer to our field names; fields that are missing, null or not scalars are absent.

    Parameters
    ----------
    document
        The decoded JSON answer (anything: a malformed answer simply maps to no fields).
    field_map
        Our field name → dotted path in the CRM answer.

    Returns
    -------
    dict[str, str]
        Text values: strings as they are, numbers and booleans as JSON (``3``, ``true``).
    """
    found: dict[str, str] = {}
    for ours, path in field_map.items():
        value = extract_path(document, path)
        if isinstance(value, str):
            found[ours] = value
        elif isinstance(value, bool | int | float):
            found[ours] = json.dumps(value)
    return found


def _origin(url: str) -> str:
    """Scheme and host of ``url``: safe for messages (no path, query or credentials)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")


@dataclass(frozen=True, slots=True)
class _Attempt:
    kind: Literal["ok", "not_found", "retryable", "final"]
    reason: str = ""
    body: bytes = b""


class RestCrmConnector:
    """Reads profiles from a CRM's REST API within the caller's deadline.

    Parameters
    ----------
    url_template
        The profile URL with a ``{customer_id}`` placeholder, e.g.
        ``"https://crm.example/api/customers/{customer_id}"``; the id is URL-encoded into it.
    field_map
        Our field name → dotted JSON path in the CRM answer, e.g.
        ``{"name": "data.profile.fullName", "tier": "data.membership.level"}``.
    auth_header
        The header that carries the credentials.
    secret_id
        Secrets Manager secret whose ``SecretString`` is the header value (kept five minutes).
    auth_value
        A literal header value instead of ``secret_id`` (tests, unauthenticated CRMs leave both out).
    timeout_s
        Longest single attempt (also bounded by what is left of the deadline).
    retries
        Most attempts per lookup, the first included.
    backoff_base_s, backoff_max_s
        Full-jitter backoff: before attempt ``n + 1`` wait ``random() * min(max, base * 2 ** (n - 1))``.
    breaker, cache
        Shared state; by default a breaker opening after 5 consecutive failures for 30 s and a
        cache of 1024 customers.
    cache_ttl_s, not_found_ttl_s
        How long profiles and "not found" answers are kept.
    secrets_client
        A Secrets Manager client; by default ``aws.client("secretsmanager")``, made on first use.
    transport, sleep, random, clock
        Injectable HTTP sender, pause, ``[0, 1)`` random source and monotonic clock.
    """

    def __init__(
        self,
        url_template: str,
        field_map: Mapping[str, str],
        *,
        auth_header: str = "Authorization",
        secret_id: str | None = None,
        auth_value: str | None = None,
        timeout_s: float = 2.0,
        retries: int = 3,
        backoff_base_s: float = 0.1,
        backoff_max_s: float = 1.0,
        breaker: CircuitBreaker | None = None,
        cache: ProfileCache | None = None,
        cache_ttl_s: float = 300.0,
        not_found_ttl_s: float = 30.0,
        secrets_client: Any | None = None,
        transport: Transport = urllib_transport,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not url_template.startswith(("https://", "http://")) or "{customer_id}" not in url_template:
            raise ValueError(
                f"url_template must be an http(s) URL containing '{{customer_id}}', not {url_template!r}: "
                "e.g. 'https://crm.example/api/customers/{customer_id}'"
            )
        if not field_map:
            raise ValueError("field_map is empty: map at least 'name' to a dotted path in the CRM answer")
        if secret_id is not None and auth_value is not None:
            raise ValueError("give secret_id or auth_value, not both: the header has one value")
        if timeout_s <= 0 or retries < 1:
            raise ValueError(f"timeout_s must be positive and retries at least 1, not {timeout_s}, {retries}")
        if backoff_base_s < 0 or backoff_max_s < 0:
            raise ValueError("backoff_base_s and backoff_max_s must not be negative")
        self.url_template = url_template
        self.field_map = dict(field_map)
        self.auth_header = auth_header
        self.secret_id = secret_id
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.cache_ttl_s = cache_ttl_s
        self.not_found_ttl_s = not_found_ttl_s
        self.breaker = breaker if breaker is not None else CircuitBreaker(clock=clock)
        self.cache = cache if cache is not None else ProfileCache(clock=clock)
        self._auth_value = auth_value
        self._secret_text = (
            SecretText(secret_id, "the CRM header value", client=secrets_client, clock=clock)
            if secret_id is not None
            else None
        )
        self._transport = transport
        self._sleep = sleep
        self._random = random
        self._clock = clock

    def lookup(self, customer_id: str, *, deadline_s: float) -> ProfileLookup:
        """Return the customer's profile within ``deadline_s`` seconds; never raises for CRM trouble.

        Parameters
        ----------
        customer_id
            The CRM's id of the customer.
        deadline_s
            Seconds the caller can wait, retries and backoff included.

        Returns
        -------
        ProfileLookup
            ``ok`` with the mapped profile, ``not_found``, or ``unavailable`` with the reason.

        Raises
        ------
        InvalidInputError
            When ``customer_id`` is empty (a caller's bug, not CRM trouble).
        """
        if not customer_id:
            raise InvalidInputError("customer_id is empty: pass the VIP member's CRM customer id")
        started = self._clock()
        end = started + deadline_s

        def done(lookup: ProfileLookup) -> ProfileLookup:
            return replace(lookup, elapsed_ms=(self._clock() - started) * 1000.0)

        cached = self.cache.get(customer_id)
        if cached is not None:
            return done(replace(cached, from_cache=True))
        try:
            headers = self._headers()
        except DependencyError as exc:
            return done(ProfileLookup(None, "unavailable", str(exc)))

        url = self.url_template.replace("{customer_id}", urllib.parse.quote(customer_id, safe=""))
        reason = f"no time left to call the CRM within the {deadline_s:.3g} s deadline"
        attempts = 0
        while attempts < self.retries:
            remaining = end - self._clock()
            if remaining < MIN_ATTEMPT_SECONDS:
                break
            if not self.breaker.allow():
                reason = (
                    f"{reason}; " if attempts else ""
                ) + f"the CRM is failing: calls are paused for {self.breaker.retry_in_s():.0f} s"
                break
            attempts += 1
            outcome = self._attempt(url, headers, min(self.timeout_s, remaining))
            if outcome.kind == "retryable":
                self.breaker.record_failure()
                reason = outcome.reason
            else:
                self.breaker.record_success()
                return done(self._settle(customer_id, outcome))
            if attempts < self.retries:
                pause = self._random() * min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempts - 1))
                if end - self._clock() - pause < MIN_ATTEMPT_SECONDS:
                    # Another attempt would not fit before the deadline: answer now instead.
                    break
                self._sleep(pause)
        if attempts:
            reason = f"{reason} (after {attempts} attempt{'s' if attempts > 1 else ''})"
        return done(ProfileLookup(None, "unavailable", reason))

    def notify(self, sighting: dict[str, object]) -> None:
        """Do nothing: a REST connector only reads profiles (use a webhook connector to push)."""

    def _settle(self, customer_id: str, outcome: _Attempt) -> ProfileLookup:
        if outcome.kind == "not_found":
            lookup = ProfileLookup(None, "not_found", "the CRM does not know this customer")
            self.cache.put(customer_id, lookup, self.not_found_ttl_s)
            return lookup
        if outcome.kind == "final":
            return ProfileLookup(None, "unavailable", outcome.reason)
        try:
            document: object = json.loads(outcome.body)
            reason = ""
        except (ValueError, UnicodeDecodeError) as exc:
            document = None
            reason = f"the CRM answer is not valid JSON ({exc}): mapped fields are missing"
        values = mapped_fields(document, self.field_map)
        name = values.pop("name", None)
        tier = values.pop("tier", None)
        lookup = ProfileLookup(CrmProfile(customer_id, name, tier, values), "ok", reason)
        if not reason:
            # A garbled answer is not kept: the next sighting asks again.
            self.cache.put(customer_id, lookup, self.cache_ttl_s)
        return lookup

    def _attempt(self, url: str, headers: dict[str, str], timeout_s: float) -> _Attempt:
        request = urllib.request.Request(url, headers=headers, method="GET")
        where = _origin(url)
        try:
            answer = self._transport(request, timeout_s)
        except EgressRefusedError as exc:
            # Policy, not CRM trouble: never retried, nothing was sent.
            return _Attempt("final", f"the CRM at {where} was not called: {exc}")
        except TimeoutError:
            return _Attempt("retryable", f"the CRM at {where} did not answer within {timeout_s:.3g} s")
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                return _Attempt("retryable", f"the CRM at {where} did not answer within {timeout_s:.3g} s")
            return _Attempt("retryable", f"could not reach the CRM at {where}: {exc.reason}")
        except (OSError, http.client.HTTPException) as exc:
            return _Attempt("retryable", f"the connection to the CRM at {where} failed: {exc!r}")
        status = answer.status
        if 200 <= status < 300:
            if len(answer.body) > MAX_BODY_BYTES:
                return _Attempt("final", f"the CRM answer is over {MAX_BODY_BYTES} bytes: check the URL")
            return _Attempt("ok", body=answer.body)
        if status == 404:
            return _Attempt("not_found")
        if status >= 500:
            return _Attempt("retryable", f"the CRM at {where} answered {status}")
        if status in (401, 403):
            # The secret may have been rotated: read it again on the next lookup.
            if self._secret_text is not None:
                self._secret_text.forget()
            return _Attempt(
                "final", f"the CRM at {where} refused our credentials ({status}): check the CRM secret"
            )
        if 300 <= status < 400:
            return _Attempt(
                "final",
                f"the CRM at {where} answered {status}, a redirect, which is not followed: "
                "set the connector's URL to where it points",
            )
        return _Attempt("final", f"the CRM at {where} answered {status}: check the connector's URL")

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "eventface-crm/1"}
        value = self._auth_value if self._auth_value is not None else self._read_secret()
        if value is not None:
            headers[self.auth_header] = value
        return headers

    def _read_secret(self) -> str | None:
        return self._secret_text.value() if self._secret_text is not None else None


class SecretText:
    """A Secrets Manager secret's text, read on first use and again after
    :data:`SECRET_CACHE_SECONDS` (a rotated secret is picked up).

    Parameters
    ----------
    secret_id
        The secret's name or ARN.
    what
        What the secret holds, for error messages ("the CRM header value").
    client
        A Secrets Manager client; ``aws.client("secretsmanager")`` on first use.
    clock
        Monotonic seconds.
    """

    def __init__(
        self,
        secret_id: str,
        what: str,
        *,
        client: Any | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.secret_id = secret_id
        self.what = what
        self._client = client
        self._clock = clock
        self._cached: tuple[float, str] | None = None
        self._lock = threading.Lock()

    def forget(self) -> None:
        """Read the secret again on the next use (it was refused: it may have been rotated)."""
        with self._lock:
            self._cached = None

    def value(self) -> str:
        """The text; DependencyError when it cannot be read or is not text."""
        with self._lock:
            now = self._clock()
            if self._cached is not None and now - self._cached[0] < SECRET_CACHE_SECONDS:
                return self._cached[1]
            client = self._client if self._client is not None else aws.client("secretsmanager")
            try:
                answer = client.get_secret_value(SecretId=self.secret_id)
            except (ClientError, BotoCoreError) as exc:
                raise DependencyError(
                    f"{self.what} could not be read from Secrets Manager ({exc}): check that the "
                    f"secret {self.secret_id!r} exists and the function may read it"
                ) from exc
            value = answer.get("SecretString")
            if not isinstance(value, str) or not value:
                raise DependencyError(
                    f"the secret {self.secret_id!r} has no SecretString: store {self.what} in it as text"
                )
            self._cached = (now, value)
            return value


class WebhookCrmConnector:
    """Pushes VIP sightings to a CRM webhook as HMAC-signed JSON; provides no profiles.

    The receiver checks ``X-Signature: sha256=<hex>``, the HMAC-SHA256 of the raw body with the
    shared secret, and may refuse stale ``X-Timestamp`` values (Unix seconds).

    Parameters
    ----------
    url
        The webhook's http(s) URL.
    secret
        The shared HMAC key.
    timeout_s
        Longest wait for the webhook's answer.
    transport, wall_clock
        Injectable HTTP sender and wall clock (Unix seconds) for ``X-Timestamp``.
    """

    def __init__(
        self,
        url: str,
        secret: bytes,
        timeout_s: float = 5.0,
        *,
        transport: Transport = urllib_transport,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"url must be an http(s) URL, not {url!r}: set the CRM webhook URL")
        if not secret:
            raise ValueError("secret is empty: set the HMAC key shared with the CRM webhook")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, not {timeout_s}")
        self.url = url
        self.timeout_s = timeout_s
        self._secret = secret
        self._transport = transport
        self._wall_clock = wall_clock

    def lookup(self, customer_id: str, *, deadline_s: float) -> ProfileLookup:
        """Answer ``unavailable`` at once: webhooks only receive sightings."""
        return ProfileLookup(None, "unavailable", WEBHOOK_HAS_NO_PROFILES)

    def notify(self, sighting: dict[str, object]) -> None:
        """POST ``sighting`` as signed JSON.

        Raises
        ------
        InvalidInputError
            When the sighting cannot be written as JSON.
        DependencyError
            When the webhook cannot be reached or answers other than 2xx (the caller retries).
        """
        try:
            body = json.dumps(sighting, separators=(",", ":"), sort_keys=True).encode()
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"the sighting cannot be sent as JSON ({exc}): pass only strings, numbers, lists and dicts"
            ) from exc
        signature = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "X-Signature": f"sha256={signature}",
                "X-Timestamp": str(int(self._wall_clock())),
                "User-Agent": "eventface-crm/1",
            },
        )
        where = _origin(self.url)
        try:
            answer = self._transport(request, self.timeout_s)
        except EgressRefusedError as exc:
            raise DependencyError(f"the CRM webhook at {where} was not called: {exc}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise DependencyError(
                f"the CRM webhook at {where} could not be reached ({exc}): the sighting was not "
                "delivered; retry later"
            ) from exc
        if not 200 <= answer.status < 300:
            raise DependencyError(
                f"the CRM webhook at {where} answered {answer.status}: the sighting was not delivered; "
                "retry later, or check the webhook URL and secret if it keeps failing"
            )


class _SecretWebhookCrm:
    """A :class:`WebhookCrmConnector` whose HMAC key is the Secrets Manager secret ``secret_id``,
    read on the first sighting (not when the directory builds it) and again after
    :data:`SECRET_CACHE_SECONDS`."""

    def __init__(
        self,
        url: str,
        secret_id: str,
        timeout_s: float,
        *,
        secrets_client: Any | None = None,
        transport: Transport = urllib_transport,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.secret_id = secret_id
        self.timeout_s = timeout_s
        self._key = SecretText(secret_id, "the CRM webhook's HMAC key", client=secrets_client, clock=clock)
        self._transport = transport
        self._connector: tuple[str, WebhookCrmConnector] | None = None

    def lookup(self, customer_id: str, *, deadline_s: float) -> ProfileLookup:
        """Answer ``unavailable`` at once: webhooks only receive sightings."""
        return ProfileLookup(None, "unavailable", WEBHOOK_HAS_NO_PROFILES)

    def notify(self, sighting: dict[str, object]) -> None:
        """POST ``sighting`` signed with the secret; DependencyError when the secret or the webhook fails."""
        key = self._key.value()
        if self._connector is None or self._connector[0] != key:
            self._connector = (
                key,
                WebhookCrmConnector(self.url, key.encode(), self.timeout_s, transport=self._transport),
            )
        self._connector[1].notify(sighting)


class _RefusedCrm:
    """The connector of a venue whose CRM config may not be used (a secret outside the venue's
    tenant): no secret is read and nothing is sent; lookups are ``unavailable`` with the reason and
    notifications fail with it."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def lookup(self, customer_id: str, *, deadline_s: float) -> ProfileLookup:
        """Answer ``unavailable`` with the reason, at once."""
        return ProfileLookup(None, "unavailable", self.reason)

    def notify(self, sighting: dict[str, object]) -> None:
        """Refuse: DependencyError with the reason (nothing is sent)."""
        raise DependencyError(self.reason)


class VenueCrmDirectory:
    """The CRM connector of each venue, built from its :class:`~eventface.domain.vip.CrmConfig` and
    kept for the life of the container, so that a connector's circuit breaker and profile cache
    outlive one invocation.

    A connector is kept per (tenant, venue) together with the config it was built from: the same
    config gets the same connector, a changed config (the venue was edited) a new one. Building does
    no I/O (secrets are read on first use). At most ``max_venues`` connectors are kept, least
    recently used dropped first. A ``crm.secret_id`` outside the venue's tenant
    (:func:`~eventface.domain.secrets.check_tenant_secret`) gets a connector that reads and sends
    nothing and answers ``unavailable`` with the reason.

    The per-attempt timeout of a REST connector is half the venue's ``deadline_ms``: a first attempt
    that hangs still leaves time for one retry before the deadline (the connector also never lets
    an attempt or a backoff pause run past the deadline it is given).

    Parameters
    ----------
    secrets_client
        A Secrets Manager client for the connectors; ``aws.client("secretsmanager")`` on first use.
    transport
        The HTTP sender of every connector (tests inject one; by default real HTTP through the
        deployment's egress policy).
    max_venues
        Most connectors kept (at least 1).
    """

    def __init__(
        self,
        *,
        secrets_client: Any | None = None,
        transport: Transport = urllib_transport,
        max_venues: int = 512,
    ) -> None:
        if max_venues < 1:
            raise ValueError(f"max_venues must be at least 1, not {max_venues}")
        self._secrets_client = secrets_client
        self._transport = transport
        self.max_venues = max_venues
        self._gateways: OrderedDict[tuple[str, str], tuple[CrmConfig, CrmGateway]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._gateways)

    def gateway(self, venue: Venue) -> CrmGateway | None:
        """The venue's connector (the same one while its CRM config is unchanged); None without a CRM.

        Raises
        ------
        ValueError
            When the venue's CRM config cannot make a connector (``validate_crm`` refuses such configs
            when a venue is saved, so this means a record written around the service).
        """
        crm = venue.crm
        key = (venue.tenant_id, venue.venue_id)
        if crm.kind is CrmKind.NONE:
            with self._lock:
                self._gateways.pop(key, None)
            return None
        with self._lock:
            kept = self._gateways.get(key)
            if kept is not None and kept[0] == crm:
                self._gateways.move_to_end(key)
                return kept[1]
        built = self._build(crm, venue.tenant_id)
        with self._lock:
            kept = self._gateways.get(key)
            if kept is not None and kept[0] == crm:
                # Another thread built it meanwhile: keep one connector (one breaker, one cache).
                self._gateways.move_to_end(key)
                return kept[1]
            self._gateways[key] = (crm, built)
            self._gateways.move_to_end(key)
            while len(self._gateways) > self.max_venues:
                self._gateways.popitem(last=False)
            return built

    def _build(self, crm: CrmConfig, tenant_id: str) -> CrmGateway:
        if crm.secret_id:
            # Checked again here, not only when the venue was saved: a record written before the
            # rule (or around the service) must not make the platform read another tenant's secret.
            try:
                check_tenant_secret(tenant_id, crm.secret_id)
            except InvalidInputError as exc:
                return _RefusedCrm(f"the venue's CRM was not called: {exc}")
        deadline_s = crm.deadline_ms / 1000.0
        if crm.kind is CrmKind.REST:
            return RestCrmConnector(
                crm.url,
                crm.field_map,
                auth_header=crm.auth_header,
                secret_id=crm.secret_id or None,
                timeout_s=max(MIN_ATTEMPT_SECONDS, deadline_s / 2),
                secrets_client=self._secrets_client,
                transport=self._transport,
            )
        if crm.kind is CrmKind.WEBHOOK:
            if not crm.secret_id:
                raise ValueError(
                    "a webhook CRM needs crm.secret_id: the Secrets Manager secret of its HMAC key"
                )
            if not crm.url.startswith(("https://", "http://")):
                raise ValueError(f"crm.url must be the webhook's http(s) URL, not {crm.url!r}")
            return _SecretWebhookCrm(
                crm.url,
                crm.secret_id,
                deadline_s,
                secrets_client=self._secrets_client,
                transport=self._transport,
            )
        raise ValueError(f"unknown CRM kind {crm.kind!r}: use none, rest or webhook")
