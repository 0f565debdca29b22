"""Fixtures of the fuzz tests: the local stack under attack, its principals, and what the fuzzers found.

The fuzzers drive the local stack (moto, both Chalice apps) over real loopback HTTP, as a checkpoint
camera, a venue camera, a signed-in user of each authority, the ``owner``, a management API key and
nobody. They never stop at the first bad answer: every request's answer is checked and every
finding recorded, and a test fails at its end with the list of distinct findings (so one run shows
every 5xx, not the first). ``pytest_terminal_summary`` prints them all again.

Profiles (``EVENTFACE_FUZZ``): ``quick`` (``make test``: fixed seed, about a minute) and ``long``
(``make fuzz``: many more examples, a random seed printed at the start). ``EVENTFACE_FUZZ_SEED``
replays a run.

Safety: the stack listens on 127.0.0.1 only, its consumers (CRM look-ups, pushes) do not run, and
the whole fuzz session runs with an egress guard that refuses any connection or name look-up
outside loopback, and records the attempt as a finding: fuzzed CRM or webhook URLs never leave the
machine. Every request has a timeout and every fuzzer a bounded number of examples.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import traceback
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pytest
import requests

from eventface.local.client import AdminClient, Camera, VenueCamera, expect
from eventface.local.fuzzing import (
    FUZZ_ENVIRONMENT,
    Findings,
    egress_guard,
    error_body_problem,
    error_detail,
    load_profile,
)
from eventface.local.stack import LocalStack, running_stack
from eventface.observability import SERVICE

#: Where ``make fuzz`` writes the findings as JSON (nothing is written when unset).
REPORT_ENV: Final = "EVENTFACE_FUZZ_REPORT"

#: Photos of the face set that seed real resources (a participant, a VIP member and their alert).
PARTICIPANT_PHOTO: Final = "images/Colin_Powell/krasserm__Colin_Powell_0001.jpg"
MEMBER_PHOTO: Final = "images/Tony_Blair/krasserm__Tony_Blair_0002.jpg"
MEMBER_ARRIVES: Final = "images/Tony_Blair/krasserm__Tony_Blair_0003.jpg"
#: Every user of the local stack (one per authority, and the owner with all of them).
USERS: Final = (
    "owner",
    "campaigns",
    "targets",
    "history",
    "terminals",
    "api-keys",
    "venue-staff",
    "tenant-admin",
)


PROFILE: Final = load_profile()
FINDINGS: Final = Findings()


def pytest_report_header() -> str:
    return f"fuzz profile {PROFILE.name}, seed {PROFILE.seed} (replay: {PROFILE.replay()})"


@dataclass(frozen=True)
class Recorder:
    """Checks answers and records findings for one test (which fails at its end if it has any)."""

    test: str

    def add(
        self, principal: str, kind: str, where: str, *, status: int | None, detail: str, example: str
    ) -> None:
        FINDINGS.add(self.test, principal, kind, where, status=status, detail=detail, example=example)

    def answer(
        self, principal: str, where: str, status: int, body: bytes, example: str, *, sent: str | None = None
    ) -> None:
        """No 5xx; every 4xx a JSON ``{"Code", "Message"}`` whose message names the problem.

        ``sent`` names the kind of input, so that one route's 5xx on different inputs (which all
        answer the same generic message) are told apart."""
        FINDINGS.sent(self.test)
        causes = CAUSES.take()
        if status >= 500:
            detail = error_detail(body) + (f" <- {sent}" if sent else "") + (f" [{causes}]" if causes else "")
            self.add(principal, "5xx", where, status=status, detail=detail, example=example)
        elif status >= 400:
            problem = error_body_problem(body)
            if problem:
                self.add(principal, "4xx body", where, status=status, detail=problem, example=example)

    @contextlib.contextmanager
    def no_answer_is_a_finding(self, principal: str, where: str, example: str) -> Iterator[None]:
        """A request that times out or loses its connection is recorded, not raised."""
        try:
            yield
        except (requests.Timeout, requests.ConnectionError) as exc:
            self.add(principal, "no answer", where, status=None, detail=type(exc).__name__, example=example)


class Causes(logging.Handler):
    """What the apps log when they answer 5xx: the exception and the innermost frame of our code
    (the client waits for each answer, so what was logged since the last one belongs to it)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self._seen: deque[str] = deque(maxlen=20)

    def emit(self, record: logging.LogRecord) -> None:
        if not record.exc_info or record.exc_info[1] is None:
            return
        error, frames = record.exc_info[1], traceback.extract_tb(record.exc_info[2])
        ours = [f for f in frames if "site-packages" not in f.filename and "/lib/python3." not in f.filename]
        where = (ours or frames)[-1] if frames else None
        at = f" at {Path(where.filename).name}:{where.lineno} {where.name}" if where else ""
        self._seen.append(f"{type(error).__name__}{at}")

    def take(self) -> str:
        """What was logged since the last call."""
        seen = "; ".join(dict.fromkeys(self._seen))
        self._seen.clear()
        return seen


CAUSES: Final = Causes()
#: The attempts the running egress guard refused (one list per fuzz module).
EGRESS: Final[list[list[str]]] = []


@pytest.fixture
def recorder(request: pytest.FixtureRequest) -> Recorder:
    """The findings of this test (it fails at its end when there are any)."""
    return Recorder(request.node.nodeid)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    refused = len(EGRESS[-1]) if EGRESS else 0
    result = yield
    for attempt in sorted(set(EGRESS[-1][refused:])) if EGRESS else ():
        FINDINGS.add(item.nodeid, "-", "egress", "-", status=None, detail=attempt, example=attempt)
    found = FINDINGS.of_test(item.nodeid)
    if found:
        listing = "\n".join(finding.line() for finding in found)
        pytest.fail(
            f"{len(found)} distinct finding(s) (replay: {PROFILE.replay()}):\n{listing}", pytrace=False
        )
    return result


def pytest_terminal_summary(terminalreporter: Any) -> None:
    sent = FINDINGS.requests
    if sent:
        terminalreporter.write_line(
            f"fuzz: {sum(sent.values())} requests in {len(sent)} tests ({PROFILE.replay()})"
        )
    found = FINDINGS.all()
    if not found:
        return
    terminalreporter.section(f"fuzz findings ({PROFILE.replay()})")
    for finding in found:
        terminalreporter.write_line(finding.line())
    report = os.environ.get(REPORT_ENV)
    if report:
        rows = [finding.as_json() for finding in found]
        Path(report).write_text(json.dumps({"seed": PROFILE.seed, "findings": rows}, indent=1), "utf-8")
        terminalreporter.write_line(f"written to {report}")


@pytest.fixture(scope="module", autouse=True)
def guarded() -> Iterator[None]:
    """No name look-up or connection outside loopback while a fuzz module runs (its stack runs only
    as long); an attempt is a finding of the test that caused it."""
    # The apps' error logs name the cause of each 5xx in the findings instead of flooding the
    # output with thousands of lines.
    app_logger = logging.getLogger(SERVICE)
    saved = (list(app_logger.handlers), app_logger.propagate, app_logger.level)
    app_logger.handlers, app_logger.propagate = [CAUSES], False
    app_logger.setLevel(logging.ERROR)
    try:
        with egress_guard() as attempts:
            EGRESS.append(attempts)
            yield
    finally:
        app_logger.handlers, app_logger.propagate = saved[0], saved[1]
        app_logger.setLevel(saved[2])
        EGRESS.clear()


# -- the stack and its principals ----------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_stack(guarded: None) -> Iterator[LocalStack]:
    """The local stack on loopback with high rate limits and no consumers (nothing calls out)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in FUZZ_ENVIRONMENT.items():
            patch.setenv(name, value)
        with running_stack(consumers={}) as stack:
            # moto's tracebacks of what it cannot do (a forged cursor): the findings name the adapter
            logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
            yield stack


@dataclass
class Principal:
    """Who sends the fuzzed requests: their headers and the real ids they can reach."""

    name: str
    headers: dict[str, str]
    #: Path parameter -> a real id (substituted into about half of the generated paths).
    ids: dict[str, str] = field(default_factory=dict)
    #: Many examples and the coverage phase (owner, API key, devices), or a few examples.
    thorough: bool = False
    #: The device key header, which a successful key rotation replaces.
    device_key_header: str | None = None

    def aim(self, path_parameters: dict[str, Any], *, salt: str) -> None:
        """Point about half of the generated path parameters at real ids (the same half each run)."""
        for name, value in list(path_parameters.items()):
            real = self.ids.get(name)
            if real is not None and zlib.crc32(f"{salt}|{name}|{value!r}".encode()) % 2 == 0:
                path_parameters[name] = real

    def rotated(self, new_key: str) -> None:
        """A device that rotated its key goes on with the new one (the old one has a grace period)."""
        if self.device_key_header:
            self.headers[self.device_key_header] = new_key


@dataclass
class World:
    """The stack with real resources to aim at, and every principal."""

    stack: LocalStack
    principals: dict[str, Principal]
    photos: dict[str, bytes]
    session: requests.Session

    def principal(self, name: str) -> Principal:
        return self.principals[name]


def _user(stack: LocalStack, name: str) -> AdminClient:
    return AdminClient.signed_in(stack.admin_url, stack.user_pool, name, stack.users[name])


def _token(client: AdminClient) -> str:
    return client._auth["authorization"].removeprefix("Bearer ")


def _campaign(owner: AdminClient, name: str) -> tuple[str, str]:
    now = datetime.now(UTC)
    body = {
        "name": name,
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(days=2)).isoformat(),
        "stamps_required": 1,
        "reward_text": "Coffee",
    }
    campaign = expect(owner.call("POST", "/v1/campaigns", body), 201, what=f"campaign {name}")
    path = f"/v1/campaigns/{campaign['campaign_id']}/checkpoints"
    checkpoint = expect(owner.call("POST", path, {"name": "Gate"}), 201, what="checkpoint")
    checkpoint_id = checkpoint.get("checkpoint_id") or checkpoint["checkpoints"][-1]["checkpoint_id"]
    return str(campaign["campaign_id"]), str(checkpoint_id)


def _device(owner: AdminClient, campaign_id: str, checkpoint_id: str, name: str) -> dict[str, Any]:
    path = f"/v1/campaigns/{campaign_id}/checkpoints/{checkpoint_id}/devices"
    return expect(owner.call("POST", path, {"name": name}), 201, what=f"device {name}")


def _photo(photo: bytes) -> str:
    return base64.b64encode(photo).decode()


def _venue(owner: AdminClient, name: str, member_photo: bytes) -> tuple[str, str]:
    venue = expect(owner.call("POST", "/v1/venues", {"name": name}), 201, what=f"venue {name}")
    venue_id = str(venue["venue_id"])
    member = expect(
        owner.call(
            "POST", f"/v1/venues/{venue_id}/members", {"name": "Blair", "photo": _photo(member_photo)}
        ),
        201,
        what="member",
    )
    return venue_id, str(member["member_id"])


def _venue_camera(owner: AdminClient, stack: LocalStack, venue_id: str) -> VenueCamera:
    registration = expect(
        owner.call("POST", f"/v1/venues/{venue_id}/devices", {"name": "Lobby"}), 201, what="venue camera"
    )
    return VenueCamera.activated(stack.edge_url, registration["activation_code"])


def _seed(stack: LocalStack, photos: dict[str, bytes]) -> dict[str, Principal]:
    """Real resources for both APIs, and every principal with the ids it may aim at."""
    owner = _user(stack, "owner")
    # The edge side: cameras bound to their own campaign and venue, which the admin fuzzers
    # never see (so ending a campaign or erasing a member there does not blind the edge fuzzers).
    edge_campaign, edge_checkpoint = _campaign(owner, "Edge rally")
    camera_device = _device(owner, edge_campaign, edge_checkpoint, "camera")
    expect(owner.call("POST", f"/v1/campaigns/{edge_campaign}/publish"), 200, what="publish")
    camera = Camera.activated(stack.edge_url, camera_device["activation_code"])
    edge_venue, _ = _venue(owner, "Edge hotel", photos["member"])
    lobby = _venue_camera(owner, stack, edge_venue)
    # The admin side: one of each resource, so generated paths reach real records.
    campaign_id, checkpoint_id = _campaign(owner, "Admin rally")
    victim = _device(owner, campaign_id, checkpoint_id, "victim")
    expect(owner.call("POST", f"/v1/campaigns/{campaign_id}/publish"), 200, what="publish")
    participant = expect(
        owner.register(campaign_id, "alice", photos["participant"], push_token="inbox:"), 201, what="alice"
    )
    message = expect(
        owner.call("POST", f"/v1/campaigns/{campaign_id}/messages", {"body": {"en": "Hello"}}),
        201,
        what="message",
    )
    venue_id, member_id = _venue(owner, "Admin hotel", photos["member"])
    staff = expect(
        owner.call("POST", f"/v1/venues/{venue_id}/staff-devices", {"name": "desk", "platform": "inbox"}),
        201,
        what="staff device",
    )
    sighting = expect(
        _venue_camera(owner, stack, venue_id).sight(photos["member_arrives"]), 200, what="sight"
    )
    alert_id = next(face["alert_id"] for face in sighting["faces"] if face.get("alert_id"))
    keys = {}
    for name in ("fuzzer", "victim"):
        body = {"name": name, "authorities": ["campaigns", "targets", "history", "api_keys", "terminals",
                                               "venue_staff", "tenant_admin"]}  # fmt: skip
        keys[name] = expect(owner.call("POST", "/v1/api-keys", body), 201, what=f"key {name}")
    admin_ids = {
        "campaign_id": campaign_id,
        "checkpoint_id": checkpoint_id,
        "participant_id": str(participant["participant_id"]),
        "device_id": str(victim["device_id"]),
        "key_id": str(keys["victim"]["key_id"]),
        "venue_id": venue_id,
        "member_id": member_id,
        "staff_device_id": str(staff["staff_device_id"]),
        "alert_id": str(alert_id),
        "message_id": str(message["message_id"]),
    }
    principals = {
        "camera": Principal(
            "camera",
            {"x-device-key": camera.key},
            {"checkpoint_id": edge_checkpoint, "venue_id": edge_venue},
            thorough=True,
            device_key_header="x-device-key",
        ),
        "venue-camera": Principal(
            "venue-camera",
            {"x-device-key": lobby.key},
            {"venue_id": edge_venue, "checkpoint_id": edge_checkpoint},
            thorough=True,
            device_key_header="x-device-key",
        ),
        "nobody": Principal("nobody", {}, dict(admin_ids)),
        "api-key": Principal("api-key", {"x-api-key": str(keys["fuzzer"]["api_key"])}, dict(admin_ids), True),
    }
    for name in USERS:
        client = owner if name == "owner" else _user(stack, name)
        principals[f"user:{name}"] = Principal(
            f"user:{name}", {"authorization": f"Bearer {_token(client)}"}, dict(admin_ids), name == "owner"
        )
    return principals


@pytest.fixture(scope="module")
def world(fuzz_stack: LocalStack, faces_dir: Path) -> Iterator[World]:
    """The fuzz stack with real resources and every principal (users signed in, devices active)."""
    photos = {
        name: (faces_dir / file).read_bytes()
        for name, file in (
            ("participant", PARTICIPANT_PHOTO),
            ("member", MEMBER_PHOTO),
            ("member_arrives", MEMBER_ARRIVES),
        )
    }
    with requests.Session() as session:
        yield World(fuzz_stack, _seed(fuzz_stack, photos), photos, session)
