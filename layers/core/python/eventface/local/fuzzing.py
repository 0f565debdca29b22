"""What the fuzzers of the local stack share: their profile, their verdicts, an egress guard.

The fuzz tests (``tests/fuzz``; quick in ``make test``, long in ``make fuzz``) attack the running
local stack over loopback HTTP. This module holds what is not specific to one fuzzer:

- :class:`Profile`: how hard to push (examples per operation, per image route) and the seed;
  :func:`load_profile` reads ``EVENTFACE_FUZZ`` (``quick`` or ``long``) and ``EVENTFACE_FUZZ_SEED``
  (replay a run: the long profile draws a random seed and prints it).
- :func:`error_body_problem`: the rule every refusal must follow, a JSON ``{"Code", "Message"}``
  whose message names the problem.
- :class:`Findings`: distinct problems (5xx, no answer, malformed refusals, undocumented answers,
  egress, memory) with their first example and a count, so one run lists every 5xx it met
  instead of stopping at the first.
- :func:`egress_guard`: refuses every name look-up and connection outside loopback while the
  fuzzers run, and remembers the attempts: a fuzzed CRM or webhook URL never leaves the machine.

Standard library only.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import os
import random
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

PROFILE_ENV: Final = "EVENTFACE_FUZZ"
SEED_ENV: Final = "EVENTFACE_FUZZ_SEED"
#: The quick profile's seed: the same inputs on every run of ``make test``.
QUICK_SEED: Final = 20261123
#: The fuzzed stack's rate limits: high enough that the fuzzers reach the code behind admission
#: (the limiters have their own tests); a 429 is a 4xx like any other when it comes.
FUZZ_ENVIRONMENT: Final = {
    "EVENTFACE_DEVICE_REQUESTS_PER_MINUTE": "1000000",
    "EVENTFACE_KEY_REQUESTS_PER_MINUTE": "1000000",
    "EVENTFACE_FAILED_AUTH_PER_MINUTE": "1000000",
}
#: Kinds of finding, most serious first.
KINDS: Final = ("5xx", "no answer", "memory", "egress", "status", "4xx body", "schema")


class FuzzProfileError(ValueError):
    """``EVENTFACE_FUZZ`` or ``EVENTFACE_FUZZ_SEED`` has a value no profile has."""


@dataclass(frozen=True, slots=True)
class Profile:
    """How hard the fuzzers push, and the seed that makes a run repeatable."""

    name: str
    seed: int
    #: Fuzzing-phase examples per operation for the thorough callers (owner, API key, devices),
    #: which also get schemathesis' coverage phase.
    examples: int
    #: Examples per operation for every other caller (single-authority users, nobody).
    few_examples: int
    #: Mutated images per route.
    image_examples: int
    #: Seconds a request may take before it counts as "no answer".
    request_timeout: float = 20.0

    def replay(self) -> str:
        """The environment that repeats this run."""
        return f"{PROFILE_ENV}={self.name} {SEED_ENV}={self.seed}"


def load_profile(environ: Mapping[str, str] | None = None) -> Profile:
    """The profile ``EVENTFACE_FUZZ`` names (``quick`` when unset), seeded by ``EVENTFACE_FUZZ_SEED``
    (the quick profile's fixed seed, or a random one for ``long``: drawn once per process, so every
    fuzzer of a run shares it)."""
    env = os.environ if environ is None else environ
    return _profile(env.get(PROFILE_ENV, "") or "quick", env.get(SEED_ENV, ""))


@functools.cache
def _profile(name: str, raw_seed: str) -> Profile:
    try:
        seed = int(raw_seed) if raw_seed else None
    except ValueError:
        raise FuzzProfileError(
            f"{SEED_ENV}={raw_seed!r} is not an integer: use the seed a run printed"
        ) from None
    if name == "quick":
        return Profile(
            name, QUICK_SEED if seed is None else seed, examples=10, few_examples=2, image_examples=8
        )
    if name == "long":
        seed = random.SystemRandom().randrange(2**32) if seed is None else seed
        return Profile(name, seed, examples=150, few_examples=15, image_examples=80)
    raise FuzzProfileError(f"{PROFILE_ENV}={name!r}: use quick (make test) or long (make fuzz)")


# -- verdicts -------------------------------------------------------------------------------------

#: Messages that say nothing about what was wrong.
_EMPTY_MESSAGES: Final = frozenset({"bad request", "error", "invalid input", "forbidden", "not found"})
#: A message shorter than this cannot say what was wrong and what to do.
_MIN_MESSAGE: Final = 8


def clip(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters (saying how long it was)."""
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"


def error_body_problem(body: bytes) -> str | None:
    """What is wrong with the body of a 4xx answer, or None if it is a JSON object with a non-empty
    ``Code`` and a ``Message`` that names the problem."""
    try:
        value = json.loads(body)
    except ValueError:
        return f"not JSON: {clip(body.decode('utf-8', 'replace'), 80)}"
    if not isinstance(value, dict):
        return f"not a JSON object: {clip(json.dumps(value), 80)}"
    code, message = value.get("Code"), value.get("Message")
    if not isinstance(code, str) or not code:
        return f"no Code: {clip(json.dumps(value), 120)}"
    if not isinstance(message, str) or not message.strip():
        return f"{code} without a Message"
    text = message.strip()
    if text.lower() in _EMPTY_MESSAGES or text == code or len(text) < _MIN_MESSAGE:
        return f"the message of {code} does not name the problem: {message!r}"
    return None


def error_detail(body: bytes) -> str:
    """The ``Code: Message`` of an error body (whatever its shape), for a finding."""
    try:
        value = json.loads(body)
    except ValueError:
        return f"not JSON: {clip(body.decode('utf-8', 'replace'), 80)}"
    if isinstance(value, dict) and "Code" in value:
        return f"{value.get('Code')}: {clip(str(value.get('Message')), 160)}"
    return clip(json.dumps(value), 160)


@dataclass
class Finding:
    """One distinct problem: its first example and how often it was seen, by whom."""

    kind: str
    where: str
    status: int | None
    detail: str
    example: str
    principals: set[str] = field(default_factory=set)
    count: int = 0

    def line(self) -> str:
        status = f" {self.status}" if self.status is not None else ""
        who = ",".join(sorted(self.principals))
        head = f"[{self.kind}{status}] {self.where} ({who}; {self.count}x)"
        return f"{head}: {self.detail}\n    e.g. {self.example}"

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "where": self.where,
            "status": self.status,
            "detail": self.detail,
            "example": self.example,
            "principals": sorted(self.principals),
            "count": self.count,
        }


class Findings:
    """The distinct findings of a session, and which test met which (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[tuple[str, str, int | None, str], Finding] = {}
        self._by_test: dict[str, list[tuple[str, str, int | None, str]]] = {}
        #: Requests sent (or inputs tried) per test.
        self.requests: dict[str, int] = {}

    def sent(self, test: str) -> None:
        """Count one request of ``test``."""
        with self._lock:
            self.requests[test] = self.requests.get(test, 0) + 1

    def add(
        self,
        test: str,
        principal: str,
        kind: str,
        where: str,
        *,
        status: int | None,
        detail: str,
        example: str,
    ) -> None:
        """Count one occurrence of the problem ``(kind, where, status, detail)``."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind of finding {kind!r}: use one of {KINDS}")
        key = (kind, where, status, detail)
        with self._lock:
            finding = self._by_key.get(key)
            if finding is None:
                finding = self._by_key[key] = Finding(kind, where, status, detail, clip(example, 400))
            finding.principals.add(principal)
            finding.count += 1
            keys = self._by_test.setdefault(test, [])
            if key not in keys:
                keys.append(key)

    def of_test(self, test: str) -> list[Finding]:
        """What ``test`` met, in the order it met it."""
        with self._lock:
            return [self._by_key[key] for key in self._by_test.get(test, [])]

    def all(self) -> list[Finding]:
        """Every finding, most serious kind first."""
        with self._lock:
            found = list(self._by_key.values())
        return sorted(found, key=lambda f: (KINDS.index(f.kind), f.where, f.status or 0))


# -- the egress guard -----------------------------------------------------------------------------


def is_loopback(host: object) -> bool:
    """Whether ``host`` (a name or an address) is this machine."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class EgressRefusedError(OSError):
    """Code under fuzzing tried to reach something outside loopback."""


@contextlib.contextmanager
def egress_guard() -> Iterator[list[str]]:
    """Refuse every name look-up and TCP/UDP connection outside loopback in this process.

    Yields
    ------
    list[str]
        The refused attempts, appended as they happen (e.g. ``"name look-up of 'crm.example'"``).
    """
    attempts: list[str] = []
    real_getaddrinfo = socket.getaddrinfo
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not is_loopback(host):
            attempts.append(f"name look-up of {host!r}")
            raise EgressRefusedError(f"egress guard: no look-up of {host!r} while fuzzing (loopback only)")
        return real_getaddrinfo(host, *args, **kwargs)

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address[0]):
            attempts.append(f"connection to {address[0]!r}")
            raise EgressRefusedError(f"egress guard: no connection to {address[0]!r} while fuzzing")

    def connect(sock: socket.socket, address: Any) -> None:
        check(sock, address)
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        check(sock, address)
        return real_connect_ex(sock, address)

    # setattr: the stubs' signatures are narrower than the wrappers' (which pass everything on).
    setattr(socket, "getaddrinfo", getaddrinfo)  # noqa: B010
    setattr(socket.socket, "connect", connect)  # noqa: B010
    setattr(socket.socket, "connect_ex", connect_ex)  # noqa: B010
    try:
        yield attempts
    finally:
        setattr(socket, "getaddrinfo", real_getaddrinfo)  # noqa: B010
        setattr(socket.socket, "connect", real_connect)  # noqa: B010
        setattr(socket.socket, "connect_ex", real_connect_ex)  # noqa: B010
