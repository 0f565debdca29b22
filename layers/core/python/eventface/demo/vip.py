"""The demo's VIP scene: a hotel lobby camera recognises members, the CRM is asked, staff are alerted.

A tenant admin creates the venue with its CRM connector (the local stack's loopback CRM, its API
key in Secrets Manager as the demo tenant's secret ``eventface/tenants/demo/crm-api-key``); the
people desk registers two VIP members; a staff member subscribes two devices (Japanese and
English); the operator activates the lobby camera. Then: a VIP arrives (alert with the CRM profile
on both staff devices), stands in the lobby (recognised again, no second alert), the CRM goes down
and another VIP arrives (alert "profile unavailable" within the venue's deadline), and the front
desk acknowledges the first alert.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from eventface.demo.photos import DemoPerson
from eventface.local.client import (
    AdminClient,
    Answer,
    UnexpectedAnswerError,
    VenueCamera,
    expect,
    wait_for_pushes,
)
from eventface.local.crm_server import SAMPLE_FIELD_MAP
from eventface.local.stack import LocalStack

#: The CRM's answer may take this long before the alert goes out without the profile.
CRM_DEADLINE_MS: Final = 800
#: Who the two VIPs are in the sample CRM.
CUSTOMERS: Final = (("hotel-1001", "Platinum"), ("hotel-1002", "Gold"))


@dataclass
class VipAccount:
    alerts: int = 0
    duplicates_suppressed: int = 0
    pushes: int = 0
    with_profile: int = 0
    without_profile: int = 0
    alert_ms: tuple[float, ...] = ()


def _one_line(text: str) -> str:
    return " / ".join(line for line in text.splitlines() if line)


def _check(condition: bool, what: str, answer: Answer | dict[str, Any]) -> None:
    if not condition:
        shown = answer if isinstance(answer, dict) else f"{answer.status} {answer.body}"
        raise UnexpectedAnswerError(f"{what}: unexpected {shown}")


def run_vip_scene(
    stack: LocalStack,
    people: list[tuple[DemoPerson, bytes]],
    user: Callable[[str], AdminClient],
    say: Callable[[str], None],
) -> VipAccount:
    """The scene on a running stack; ``people`` are (person, arrival frame) of at least two guests
    whose registration photos pass the quality gate."""
    account = VipAccount()
    owner, desk, staff, terminals = user("owner"), user("targets"), user("venue-staff"), user("terminals")
    venue = expect(
        owner.call(
            "POST",
            "/v1/venues",
            {
                "name": "Grand Hotel Tokyo",
                "dedupe_minutes": 30,
                "crm": {
                    "kind": "rest",
                    "url": stack.crm.profile_url_template,
                    "field_map": dict(SAMPLE_FIELD_MAP),
                    "secret_id": stack.crm_secret_id,
                    "deadline_ms": CRM_DEADLINE_MS,
                },
            },
        ),
        201,
        what="create the venue",
    )
    venue_id = venue["venue_id"]
    members: list[tuple[DemoPerson, bytes, dict[str, Any]]] = []
    for (person, frame), (customer_id, tier) in zip(people, CUSTOMERS, strict=False):
        member = expect(
            desk.call(
                "POST",
                f"/v1/venues/{venue_id}/members",
                {
                    "name": person.name,
                    "photo": base64.b64encode(person.registration).decode(),
                    "tier": tier,
                    "crm_customer_id": customer_id,
                    "notes": "Prefers to be greeted by name",
                },
            ),
            201,
            what=f"register VIP {person.name}",
        )
        members.append((person, frame, member))
    devices = [
        expect(
            staff.call("POST", f"/v1/venues/{venue_id}/staff-devices", body),
            201,
            what=f"subscribe {body['name']}",
        )
        for body in (
            {"name": "Front desk tablet", "platform": "inbox", "locale": "ja"},
            {"name": "Concierge phone", "platform": "inbox", "locale": "en"},
        )
    ]
    registration = expect(
        terminals.call("POST", f"/v1/venues/{venue_id}/devices", {"name": "Lobby camera"}),
        201,
        what="register the lobby camera",
    )
    camera = VenueCamera.activated(stack.edge_url, registration["activation_code"])
    say(
        f"Venue 'Grand Hotel Tokyo' ({venue_id}): CRM at {stack.crm.profile_url_template} (API key in "
        f"Secrets Manager as {stack.crm_secret_id}, {CRM_DEADLINE_MS} ms deadline), dedupe 30 min; VIPs "
        + ", ".join(f"{p.name} ({m['tier']}, CRM {m['crm_customer_id']})" for p, _, m in members)
        + f"; staff devices: {', '.join(d['name'] + ' [' + d['locale'] + ']' for d in devices)}; "
        "lobby camera activated"
    )
    desk_inbox = devices[0]["staff_device_id"]

    def arrive(person: DemoPerson, frame: bytes, *, expect_alert: bool, note: str) -> dict[str, Any]:
        before = len(wait_for_pushes(stack.inbox_dir, desk_inbox, expected=0, wait_seconds=0))
        started = time.perf_counter()
        answer = camera.sight(frame)
        answered_ms = (time.perf_counter() - started) * 1000
        result = expect(answer, 200, what=f"sighting of {person.name}")
        faces = [f for f in result["faces"] if f["vip"]]
        _check(bool(faces) and faces[0]["name"] == person.name, f"{person.name} should be a VIP", answer)
        face: dict[str, Any] = faces[0]
        _check(face["alerted"] == expect_alert, f"{person.name}: alerted should be {expect_alert}", answer)
        if not expect_alert:
            account.duplicates_suppressed += 1
            say(
                f"Lobby camera, {person.name} ({note}): VIP, greeting '{face['name']}', answered in "
                f"{answered_ms:.0f} ms; already alerted inside the dedupe window: no new alert"
            )
            return face
        pushes = wait_for_pushes(stack.inbox_dir, desk_inbox, expected=before + 1)
        alert_ms = (time.perf_counter() - started) * 1000
        _check(len(pushes) == before + 1, f"one push for {person.name}'s alert", {"pushes": len(pushes)})
        account.alerts += 1
        account.alert_ms = (*account.alert_ms, alert_ms)
        push = pushes[-1]
        say(
            f"Lobby camera, {person.name} ({note}): VIP, greeting '{face['name']}' ({face['tier']}), "
            f"answered in {answered_ms:.0f} ms; staff alerted {alert_ms:.0f} ms after the frame:\n"
            f"    front desk [ja] {push['title']} / {_one_line(push['body'])}"
        )
        english = wait_for_pushes(stack.inbox_dir, devices[1]["staff_device_id"], expected=account.alerts)
        say(f"    concierge  [en] {english[-1]['title']} / {_one_line(english[-1]['body'])}")
        return face

    (first, first_frame, _), (second, second_frame, _) = members[0], members[1]
    face = arrive(first, first_frame, expect_alert=True, note="arrives")
    alert = expect(staff.call("GET", f"/v1/venues/{venue_id}/alerts/{face['alert_id']}"), 200, what="alert")
    _check(alert["profile_status"] == "ok" and bool(alert["profile"]), "the alert carries the profile", alert)
    account.with_profile += 1
    profile = alert["profile"]
    say(f"    staff board: profile {', '.join(f'{k}={v}' for k, v in sorted(profile.items()))}")
    arrive(first, first_frame, expect_alert=False, note="still standing in the lobby")

    stack.crm.set_down(True)
    say("The CRM goes down (every request answered 503).")
    try:
        face2 = arrive(second, second_frame, expect_alert=True, note="arrives while the CRM is down")
    finally:
        stack.crm.set_down(False)
    alert2 = expect(staff.call("GET", f"/v1/venues/{venue_id}/alerts/{face2['alert_id']}"), 200, what="alert")
    _check(alert2["profile_status"] == "unavailable", "the alert goes out without the profile", alert2)
    account.without_profile += 1
    say(f"    staff board: profile {alert2['profile_status']} ({alert2['profile_reason']})")

    acknowledged = expect(
        staff.call("POST", f"/v1/venues/{venue_id}/alerts/{face['alert_id']}/acknowledge"),
        200,
        what="acknowledge the alert",
    )
    board = expect(staff.call("GET", f"/v1/venues/{venue_id}/alerts"), 200, what="the staff board")
    _check(len(board["items"]) == 2, "two alerts on the board (no duplicate)", board)
    account.pushes = sum(
        len(wait_for_pushes(stack.inbox_dir, d["staff_device_id"], expected=0, wait_seconds=0))
        for d in devices
    )
    _check(
        account.pushes == 4,
        "two alerts pushed to two staff devices, nothing twice",
        {"pushes": account.pushes},
    )
    say(
        f"Front desk acknowledged {first.name}'s alert ({acknowledged['acknowledged_by']}: "
        f"'I'll greet them'); staff board: {len(board['items'])} alerts, "
        f"{account.pushes} pushes to staff devices"
    )
    return account
