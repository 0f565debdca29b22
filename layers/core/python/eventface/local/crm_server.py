"""A small real CRM on loopback: profiles over REST, a signed-webhook receiver, faults on demand.

Tests, the local stack (``make up``), the demo and the CRM benchmark talk to it over real HTTP,
exactly as :class:`~eventface.adapters.crm.RestCrmConnector` and
:class:`~eventface.adapters.crm.WebhookCrmConnector` talk to a venue's CRM (CONVENTIONS: "real
servers for real protocols"). Standard library only (``http.server.ThreadingHTTPServer``).

Endpoints (``<base>`` is :attr:`CrmTestServer.url`)
---------------------------------------------------
``GET <base>/customers/{customer_id}``
    The profile as JSON (the id is URL-decoded); ``404`` JSON for an unknown customer; ``401`` JSON
    when the server has an ``auth_value`` and the ``Authorization`` header is not exactly it.
``POST <base>/webhooks/sightings``
    A signed sighting. With a ``webhook_secret`` the ``X-Signature: sha256=<hex>`` header must be the
    HMAC-SHA256 of the raw body (``401`` otherwise); without one every POST is accepted. ``204`` on
    success. Every POST is recorded in :attr:`CrmTestServer.webhook_received` with the verification
    result, refused ones included. ``X-Timestamp`` is recorded but not checked for staleness.
``GET <base>/_control``, ``POST <base>/_control``
    Read or change the fault injection from another process (the demo takes the CRM down this way):
    ``{"latency_s": 0.05, "down": true, "fail_next": 2, "status": 503, "clear": true}``, every key
    optional; the answer is the state with counters. Control requests are never delayed, failed or
    recorded, so a CRM that is "down" can always be brought back.

Fault injection (for every request except ``/_control``)
--------------------------------------------------------
1. *latency*: the request waits ``latency_s`` first (stopping the server ends the wait and drops
   the connection without an answer);
2. *down*: every request is answered ``503`` with a JSON error. An answer rather than a reset
   connection, because it is deterministic and each side can see it (a reset connection looks the
   same to the connector as an unreachable host, which tests cover with a closed port instead);
3. *fail_next*: the next ``n`` requests are answered ``status`` (default ``503``; any 3xx-5xx, e.g.
   ``302`` to check that redirects are not followed); a down server does not use them up.

Nothing is logged: HTTP access logging is off, and request bodies (guest data, signatures) never
reach any log. The control endpoint has no authentication: the server only listens on 127.0.0.1.

Run by hand with ``python -m eventface.local.crm_server --port 0``: it prints the base URL on the
first line, then the profile URL template and the webhook URL, and serves until interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import hmac
import json
import signal
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Final

HOST: Final = "127.0.0.1"
PROFILE_PATH: Final = "/customers/"
WEBHOOK_PATH: Final = "/webhooks/sightings"
CONTROL_PATH: Final = "/_control"
#: Bodies larger than this are refused with 413 (a sighting or control command is a few hundred bytes).
MAX_BODY_BYTES: Final = 1024 * 1024
CONTROL_KEYS: Final = frozenset({"latency_s", "down", "fail_next", "status", "clear"})

#: Hotel and golf-club VIPs in the nested shape many CRMs answer with; see :data:`SAMPLE_FIELD_MAP`.
SAMPLE_PROFILES: Final[Mapping[str, dict[str, Any]]] = {
    "hotel-1001": {
        "data": {
            "profile": {"fullName": "山田 太郎", "preferredName": "山田様"},
            "membership": {"level": "Platinum"},
            "preferences": {"drink": "緑茶（温）", "room": "高層階・禁煙"},
            "lastVisit": "2024-11-03",
        }
    },
    "hotel-1002": {
        "data": {
            "profile": {"fullName": "Emily Clarke", "preferredName": "Ms Clarke"},
            "membership": {"level": "Gold"},
            "preferences": {"drink": "Sparkling water, no ice", "room": "Ocean view, king bed"},
            "lastVisit": "2025-01-18",
        }
    },
    "golf-2001": {
        "data": {
            "profile": {"fullName": "佐藤 花子", "preferredName": "佐藤様"},
            "membership": {"level": "Black"},
            "preferences": {"drink": "ほうじ茶", "room": "和室"},
            "lastVisit": "2025-03-09",
        }
    },
    "golf-2002": {
        "data": {
            "profile": {"fullName": "James O'Neill", "preferredName": "Mr O'Neill"},
            "membership": {"level": "Platinum"},
            # No room preference on file: the mapped field is simply absent.
            "preferences": {"drink": "Arnold Palmer"},
            "lastVisit": "2024-09-27",
        }
    },
}

#: Our field name -> dotted path in :data:`SAMPLE_PROFILES` (a ``RestCrmConnector`` field map).
SAMPLE_FIELD_MAP: Final[Mapping[str, str]] = {
    "name": "data.profile.fullName",
    "preferred_name": "data.profile.preferredName",
    "tier": "data.membership.level",
    "drink": "data.preferences.drink",
    "room": "data.preferences.room",
    "last_visit": "data.lastVisit",
}


class Headers(Mapping[str, str]):
    """Request headers as received: names keep their spelling, lookups ignore case.

    A header sent twice keeps its last value (CRMs and webhooks send each header once).
    """

    def __init__(self, items: Sequence[tuple[str, str]]) -> None:
        self._by_lower = {name.lower(): (name, value) for name, value in items}

    def __getitem__(self, name: str) -> str:
        return self._by_lower[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._by_lower.values())

    def __len__(self) -> int:
        return len(self._by_lower)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request the CRM received (control requests excluded).

    Parameters
    ----------
    method, path
        As sent (the path still URL-encoded, query included).
    headers
        Case-insensitive for lookups.
    body
        The raw body (empty for a GET).
    status
        What the server answered (``0`` when it stopped before answering).
    received_at
        Unix seconds when the request arrived.
    """

    method: str
    path: str
    headers: Headers
    body: bytes
    status: int
    received_at: float


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One POST to the webhook, accepted or not.

    Parameters
    ----------
    headers, body
        As received.
    payload
        The body decoded as JSON (``None`` if it is not JSON).
    signature_valid
        Whether ``X-Signature`` is the HMAC of the raw body; ``None`` when the server has no secret.
    timestamp
        ``X-Timestamp`` as an integer (``None`` when missing or not a number).
    """

    headers: Headers
    body: bytes
    payload: object
    signature_valid: bool | None
    timestamp: int | None


@dataclass
class _Faults:
    latency_s: float = 0.0
    down: bool = False
    fail_next: int = 0
    fail_status: int = 503


@dataclass
class _Counters:
    requests: int = 0
    profile_lookups: int = 0
    webhooks: int = 0
    injected_failures: int = 0
    down_answers: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 drops connections when a benchmark or test opens a few dozen at once
    # (the client then waits a second for its SYN to be retried).
    request_queue_size = 128
    daemon_threads = True


def _json(document: object) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode()


def _error(message: str) -> bytes:
    return _json({"error": message})


class CrmTestServer:
    """A loopback CRM serving profiles and receiving webhooks, with faults switchable at run time.

    Parameters
    ----------
    profiles
        Customer id -> JSON profile; ``None`` serves :data:`SAMPLE_PROFILES` (``{}`` serves none).
        Copied: later changes to the mapping do not reach the server (use :meth:`put_profile`).
    auth_value
        When set, a profile GET whose ``Authorization`` header is not exactly this gets ``401``.
    webhook_secret
        When set, webhook POSTs must carry a valid ``X-Signature`` (``401`` otherwise).
    port
        The port to listen on (``0``: a free one, read it from :attr:`url`).

    Examples
    --------
    >>> with CrmTestServer(auth_value="Bearer t0ken") as crm:  # doctest: +SKIP
    ...     url, fields = crm.profile_url_template, SAMPLE_FIELD_MAP
    ...     connector = RestCrmConnector(url, fields, auth_value="Bearer t0ken")
    ...     crm.set_down(True)
    """

    def __init__(
        self,
        profiles: Mapping[str, dict[str, Any]] | None = None,
        *,
        auth_value: str | None = None,
        webhook_secret: bytes | None = None,
        port: int = 0,
    ) -> None:
        if auth_value == "":
            raise ValueError("auth_value is empty: pass None for a CRM without authentication")
        if webhook_secret == b"":
            raise ValueError("webhook_secret is empty: pass None to accept unsigned webhooks")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0 (any free port) or 1-65535, not {port}")
        source = SAMPLE_PROFILES if profiles is None else profiles
        self._profiles: dict[str, dict[str, Any]] = copy.deepcopy(dict(source))
        self.auth_value = auth_value
        self.webhook_secret = webhook_secret
        self._port = port
        self._lock = threading.Lock()
        self._faults = _Faults()
        self._counters = _Counters()
        self._requests: list[ReceivedRequest] = []
        self._webhooks: list[WebhookDelivery] = []
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._url = ""

    # -- life cycle ---------------------------------------------------------------------------------

    def start(self) -> CrmTestServer:
        """Start listening on 127.0.0.1 and serving in a daemon thread; returns ``self``."""
        if self._server is not None:
            raise RuntimeError(f"the CRM test server is already running at {self._url}: stop() it first")
        self._stopping.clear()
        server = _Server((HOST, self._port), _handler_for(self))
        port = server.server_address[1]
        self._url = f"http://{HOST}:{port}"
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="crm-test-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests waiting out their latency are dropped without an answer."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> CrmTestServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses ----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:50123`` (only while running)."""
        if not self._url or self._server is None:
            raise RuntimeError("the CRM test server is not running: call start() or use it in a with block")
        return self._url

    @property
    def egress_allow_entry(self) -> str:
        """``127.0.0.1:<port>``: the entry of ``EVENTFACE_EGRESS_ALLOW`` that lets the platform call
        this server (loopback is refused otherwise)."""
        return self.url.removeprefix("http://")

    @property
    def profile_url_template(self) -> str:
        """``<base>/customers/{customer_id}``: the ``url_template`` of a ``RestCrmConnector``."""
        return f"{self.url}{PROFILE_PATH}{{customer_id}}"

    @property
    def webhook_url(self) -> str:
        """``<base>/webhooks/sightings``: the ``url`` of a ``WebhookCrmConnector``."""
        return f"{self.url}{WEBHOOK_PATH}"

    @property
    def control_url(self) -> str:
        """``<base>/_control``: fault injection over HTTP."""
        return f"{self.url}{CONTROL_PATH}"

    # -- data and faults ----------------------------------------------------------------------------

    def put_profile(self, customer_id: str, profile: dict[str, Any]) -> None:
        """Serve ``profile`` (copied) for ``customer_id`` from now on."""
        with self._lock:
            self._profiles[customer_id] = copy.deepcopy(profile)

    def remove_profile(self, customer_id: str) -> None:
        """Answer 404 for ``customer_id`` from now on (no error if it was unknown)."""
        with self._lock:
            self._profiles.pop(customer_id, None)

    def set_latency(self, seconds: float) -> None:
        """Delay every CRM request by ``seconds`` (0 for none)."""
        self._configure({"latency_s": seconds})

    def set_down(self, down: bool = True) -> None:
        """Answer every CRM request 503 (after the latency) until ``set_down(False)``."""
        self._configure({"down": down})

    def fail_next(self, n: int, status: int = 503) -> None:
        """Answer the next ``n`` CRM requests with ``status`` (replacing any failures still pending)."""
        self._configure({"fail_next": n, "status": status})

    def clear(self) -> None:
        """Forget the recorded requests, webhooks and counters, and switch every fault off."""
        self._configure({"clear": True, "latency_s": 0.0, "down": False, "fail_next": 0, "status": 503})

    def control_state(self) -> dict[str, Any]:
        """The faults and counters, as ``GET /_control`` answers them."""
        with self._lock:
            return self._state_locked()

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A snapshot of every CRM request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def webhook_received(self) -> list[WebhookDelivery]:
        """A snapshot of every webhook POST received so far, oldest first."""
        with self._lock:
            return list(self._webhooks)

    def _configure(self, command: Mapping[str, object]) -> dict[str, Any]:
        """Validate a control command, apply it at once, and return the new state.

        Raises
        ------
        ValueError
            With a message that names the bad key and what it accepts; nothing is applied then.
        """
        unknown = set(command) - CONTROL_KEYS
        if unknown:
            raise ValueError(f"unknown control keys {sorted(unknown)}: use only {sorted(CONTROL_KEYS)}")
        latency = command.get("latency_s")
        if latency is not None and (
            isinstance(latency, bool) or not isinstance(latency, int | float) or not 0 <= latency <= 600
        ):
            raise ValueError(f"latency_s must be a number of seconds from 0 to 600, not {latency!r}")
        down = command.get("down")
        if down is not None and not isinstance(down, bool):
            raise ValueError(f"down must be true or false, not {down!r}")
        fail_next = command.get("fail_next")
        if fail_next is not None and (
            isinstance(fail_next, bool) or not isinstance(fail_next, int) or fail_next < 0
        ):
            raise ValueError(f"fail_next must be a whole number of requests (0 or more), not {fail_next!r}")
        status = command.get("status")
        if status is not None and (
            isinstance(status, bool) or not isinstance(status, int) or not 300 <= status <= 599
        ):
            raise ValueError(f"status must be an HTTP status from 300 to 599, not {status!r}")
        clear = command.get("clear")
        if clear is not None and not isinstance(clear, bool):
            raise ValueError(f"clear must be true or false, not {clear!r}")
        with self._lock:
            if clear:
                self._requests.clear()
                self._webhooks.clear()
                self._counters = _Counters()
            if latency is not None:
                self._faults.latency_s = float(latency)
            if down is not None:
                self._faults.down = down
            if fail_next is not None:
                self._faults.fail_next = fail_next
            if status is not None:
                self._faults.fail_status = status
            return self._state_locked()

    def _state_locked(self) -> dict[str, Any]:
        counters = self._counters
        return {
            "latency_s": self._faults.latency_s,
            "down": self._faults.down,
            "fail_next": self._faults.fail_next,
            "status": self._faults.fail_status,
            "profiles": len(self._profiles),
            "counters": {
                "requests": counters.requests,
                "profile_lookups": counters.profile_lookups,
                "webhooks": counters.webhooks,
                "injected_failures": counters.injected_failures,
                "down_answers": counters.down_answers,
                "by_status": {str(code): n for code, n in sorted(counters.by_status.items())},
            },
        }

    # -- request handling (called from the handler threads) -------------------------------------------

    def _latency(self) -> float:
        with self._lock:
            return self._faults.latency_s

    def _injected_fault(self) -> tuple[int, bytes] | None:
        """The fault answer for this request, if any (a down server does not use up ``fail_next``)."""
        with self._lock:
            if self._faults.down:
                self._counters.down_answers += 1
                return 503, _error('the CRM is down (fault injection): POST {"down": false} to /_control')
            if self._faults.fail_next > 0:
                self._faults.fail_next -= 1
                self._counters.injected_failures += 1
                status = self._faults.fail_status
                return status, _error(f'injected failure ({status}): POST {{"fail_next": 0}} to /_control')
        return None

    def _answer_profile(self, headers: Headers, path: str) -> tuple[int, bytes]:
        with self._lock:
            self._counters.profile_lookups += 1
        if self.auth_value is not None and not hmac.compare_digest(
            headers.get("Authorization", "").encode(), self.auth_value.encode()
        ):
            return 401, _error("missing or wrong Authorization header: send the CRM's API credentials")
        raw_id = urllib.parse.urlsplit(path).path[len(PROFILE_PATH) :]
        customer_id = urllib.parse.unquote(raw_id)
        with self._lock:
            profile = self._profiles.get(customer_id)
            body = _json(profile) if profile is not None else None
        if body is None:
            return 404, _error(f"no customer with id {customer_id!r}: check the VIP's CRM customer id")
        return 200, body

    def _answer_webhook(self, headers: Headers, body: bytes) -> tuple[int, bytes]:
        valid: bool | None = None
        if self.webhook_secret is not None:
            expected = "sha256=" + hmac.new(self.webhook_secret, body, hashlib.sha256).hexdigest()
            valid = hmac.compare_digest(headers.get("X-Signature", "").encode(), expected.encode())
        try:
            payload: object = json.loads(body)
        except ValueError:
            payload = None
        timestamp_text = headers.get("X-Timestamp", "")
        timestamp = int(timestamp_text) if timestamp_text.isdigit() else None
        delivery = WebhookDelivery(headers, body, payload, valid, timestamp)
        with self._lock:
            self._counters.webhooks += 1
            self._webhooks.append(delivery)
        if valid is False:
            return 401, _error("bad X-Signature: sign the raw body with HMAC-SHA256 and the shared secret")
        if payload is None:
            return 400, _error("the body is not JSON: send the sighting as a JSON object")
        return 204, b""

    def _record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self._counters.requests += 1
            by_status = self._counters.by_status
            by_status[request.status] = by_status.get(request.status, 0) + 1
            self._requests.append(request)


def _handler_for(crm: CrmTestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "eventface-crm-test/1"

        def log_message(self, format: str, *args: Any) -> None:
            """Access logging off: nothing about guests or signatures is written anywhere."""

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def _handle(self) -> None:
            received_at = time.time()
            headers = Headers(list(self.headers.items()))
            length_text = self.headers.get("Content-Length") or "0"
            if not length_text.isdigit() or int(length_text) > MAX_BODY_BYTES:
                self._send(
                    413, _error(f"the body must be at most {MAX_BODY_BYTES} bytes with a Content-Length")
                )
                return
            body = self.rfile.read(int(length_text))
            path = urllib.parse.urlsplit(self.path).path
            if path == CONTROL_PATH:
                self._control(body)
                return
            status, answer = self._crm(headers, path, body)
            crm._record(ReceivedRequest(self.command, self.path, headers, body, status, received_at))
            if status:
                self._send(status, answer)

        def _crm(self, headers: Headers, path: str, body: bytes) -> tuple[int, bytes]:
            latency = crm._latency()
            if latency and crm._stopping.wait(latency):
                return 0, b""  # stopping: drop the connection unanswered
            fault = crm._injected_fault()
            if fault is not None:
                return fault
            if self.command == "GET" and path.startswith(PROFILE_PATH) and len(path) > len(PROFILE_PATH):
                return crm._answer_profile(headers, self.path)
            if self.command == "POST" and path == WEBHOOK_PATH:
                return crm._answer_webhook(headers, body)
            return 404, _error(
                f"no route for {self.command} {path}: "
                f"use GET {PROFILE_PATH}{{customer_id}} or POST {WEBHOOK_PATH}"
            )

        def _control(self, body: bytes) -> None:
            if self.command == "GET":
                self._send(200, _json(crm.control_state()))
                return
            try:
                command = json.loads(body or b"{}")
                if not isinstance(command, dict):
                    raise ValueError('the control body must be a JSON object, e.g. {"down": true}')
                state = crm._configure(command)
            except ValueError as exc:  # json.JSONDecodeError is a ValueError
                self._send(400, _error(str(exc)))
                return
            self._send(200, _json(state))

        def _send(self, status: int, body: bytes) -> None:
            try:
                self.send_response(status)
                if body:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its deadline passed): expected with injected latency

    return Handler


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a CRM on 127.0.0.1 until interrupted (``python -m eventface.local.crm_server``).

    Prints the base URL alone on the first line (for scripts), then the profile URL template, the
    webhook URL and the control URL.
    """
    parser = argparse.ArgumentParser(
        prog="python -m eventface.local.crm_server",
        description="A loopback CRM test server with the sample VIP profiles and fault injection.",
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--auth-value", default=None, help="require this exact Authorization header value")
    parser.add_argument("--webhook-secret", default=None, help="HMAC key webhooks must be signed with")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds to delay every CRM request")
    args = parser.parse_args(argv)
    crm = CrmTestServer(
        auth_value=args.auth_value,
        webhook_secret=args.webhook_secret.encode() if args.webhook_secret else None,
        port=args.port,
    )
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    with crm:
        crm.set_latency(args.latency)
        print(crm.url, flush=True)
        print(f"profiles:  {crm.profile_url_template}  (customers: {', '.join(SAMPLE_PROFILES)})", flush=True)
        print(f"webhook:   {crm.webhook_url}", flush=True)
        print(f'control:   {crm.control_url}  (POST {{"down": true}} to take the CRM down)', flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            done.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
