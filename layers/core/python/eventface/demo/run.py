"""``make demo``: a whole stamp rally on the local stack, driven over HTTP with real face photos.

The operator creates a campaign (three checkpoints, three stamps to complete), publishes it and
registers one camera per checkpoint; attendees register with a photo (the quality gate refuses a
turned head, as it would at an info desk); then the cameras see people: in other lighting, from
another angle, as a compressed frame, wearing a mask, twice at the same checkpoint, and a face
nobody registered. Every answer is checked; the account printed at the end says who got which
stamp, who completed the rally and which pushes reached their phones (the local inbox); the
marketer thanks the completers with a campaign message. Then the VIP scene
(:mod:`eventface.demo.vip`): a hotel recognises its members and alerts its staff. Any unexpected
answer ends the demo with a non-zero exit code and says which request got what.

Photos come from the insightface wheel on PyPI (:mod:`eventface.demo.photos`), or from
``PHOTOS=DIR`` (one sub-folder per person, optionally ``strangers/``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from eventface.demo.photos import SHOT_KINDS, DemoCast, DemoPerson, DemoPhotosError, load_cast
from eventface.demo.vip import run_vip_scene
from eventface.local.client import AdminClient, Answer, Camera, UnexpectedAnswerError, expect, wait_for_pushes
from eventface.local.stack import StackError, running_stack

CHECKPOINTS: Final = ("Main gate", "Food court", "Stage")
STAMPS_REQUIRED: Final = 3
REWARD: Final = "Show this message at the info desk for your tote bag."
TEXTS: Final = {
    "stamp": "{nickname}, you have {stamps} of {required} stamps!",
    "complete": "Rally complete, {nickname}! {reward}",
}
LIGHTING, ANGLE, COMPRESSED, MASKED = (SHOT_KINDS.index(k) for k in SHOT_KINDS)


class DemoFailedError(RuntimeError):
    """The stack answered something the scenario did not expect."""


@dataclass
class Attendee:
    person: DemoPerson
    participant_id: str | None = None
    refusal: str | None = None


@dataclass
class Story:
    """What happened, in order, for the account."""

    lines: list[str] = field(default_factory=list)
    new_stamps: int = 0
    completions: int = 0
    unknown: int = 0
    already_stamped: int = 0
    masked_recognised: int = 0
    #: Pushes each participant should receive (a stamp each, the completion).
    pushes: dict[str, int] = field(default_factory=dict)

    def say(self, line: str) -> None:
        self.lines.append(line)
        print(line, flush=True)


def _check(condition: bool, what: str, answer: Answer) -> None:
    if not condition:
        raise DemoFailedError(f"{what}: unexpected answer {answer.status} {answer.body}")


def _shot(person: DemoPerson, kind: int) -> bytes:
    shots = person.camera_shots
    return shots[kind] if kind < len(shots) else shots[-1]


def _reasons(body: dict[str, Any]) -> str:
    """The quality gate's reasons ("head_turned: head turned to the side...")."""
    reasons = body.get("Reasons") or []
    parts = [f"{r.get('code')}: {r.get('message')}" if isinstance(r, dict) else str(r) for r in reasons]
    return "; ".join(parts) or str(body.get("Message", ""))


def run(cast: DemoCast, story: Story) -> None:
    """The scenario on a freshly started stack (see the module docstring)."""
    with running_stack() as stack:
        story.say(
            f"Local stack up: edge {stack.edge_url}, admin {stack.admin_url}, AWS (moto) {stack.aws_endpoint}"
        )

        def user(name: str) -> AdminClient:
            return AdminClient.signed_in(stack.admin_url, stack.user_pool, name, stack.users[name])

        # Each person signs in with their own authority; the registration desk is a system with a
        # management API key that the owner created for it.
        marketer, terminals, auditor = user("campaigns"), user("terminals"), user("tenant-admin")
        key = expect(
            user("owner").call(
                "POST",
                "/v1/api-keys",
                {"name": "registration desk", "authorities": ["targets"], "ttl_days": 1},
            ),
            201,
            what="create the registration desk's API key",
        )
        desk = AdminClient(stack.admin_url, api_key=key["api_key"])
        story.say(
            f"Signed in (Cognito, tenant {stack.tenant_id}): marketer 'campaigns', operator 'terminals', "
            f"history viewer 'history', auditor 'tenant-admin'; owner made API key {key['prefix']}... "
            "(targets only) for the registration desk"
        )
        admin = marketer
        now = datetime.now(UTC)

        # -- the operator sets up the rally ------------------------------------------------
        campaign = expect(
            admin.call(
                "POST",
                "/v1/campaigns",
                {
                    "name": "Autumn Fair Stamp Rally",
                    "starts_at": (now - timedelta(hours=1)).isoformat(),
                    "ends_at": (now + timedelta(days=1)).isoformat(),
                    "stamps_required": STAMPS_REQUIRED,
                    "reward_text": REWARD,
                    "notification_texts": TEXTS,
                },
            ),
            201,
            what="create the campaign",
        )
        campaign_id = campaign["campaign_id"]
        cameras: list[Camera] = []
        names: dict[str, str] = {}
        for name in CHECKPOINTS:
            body = expect(
                admin.call("POST", f"/v1/campaigns/{campaign_id}/checkpoints", {"name": name}),
                201,
                what=f"add checkpoint {name}",
            )
            checkpoint_id = body.get("checkpoint_id") or body["checkpoints"][-1]["checkpoint_id"]
            names[checkpoint_id] = name
            device = expect(
                terminals.call(
                    "POST",
                    f"/v1/campaigns/{campaign_id}/checkpoints/{checkpoint_id}/devices",
                    {"name": f"{name} camera"},
                ),
                201,
                what=f"register the camera of {name}",
            )
            cameras.append(Camera.activated(stack.edge_url, device["activation_code"]))
        expect(admin.call("POST", f"/v1/campaigns/{campaign_id}/publish"), 200, 201, what="publish")
        story.say(
            f"Operator: campaign 'Autumn Fair Stamp Rally' ({campaign_id}) published, "
            f"{STAMPS_REQUIRED} stamps to complete, checkpoints {', '.join(CHECKPOINTS)}, one camera each "
            "(registered by the operator, activated with its one-time code)"
        )

        # -- attendees register at the info desk --------------------------------------------
        attendees = [Attendee(person) for person in cast.people]
        for attendee in attendees:
            answer = desk.register(
                campaign_id, attendee.person.name, attendee.person.registration, push_token="inbox:"
            )
            if answer.status == 201:
                attendee.participant_id = answer.body["participant_id"]
                story.say(f"Info desk: {attendee.person.name} registered ({attendee.participant_id})")
            elif answer.status == 422 and answer.body.get("Code") == "FaceQualityError":
                attendee.refusal = _reasons(answer.body)
                story.say(
                    f"Info desk: {attendee.person.name} refused by the quality gate ({attendee.refusal})"
                )
            else:
                raise DemoFailedError(
                    f"register {attendee.person.name}: unexpected answer {answer.status} {answer.body}"
                )
        registered = [a for a in attendees if a.participant_id]
        refused = [a for a in attendees if a.refusal]
        if len(registered) < 2:
            raise DemoFailedError(
                f"only {len(registered)} of {len(attendees)} attendees could register: need two"
            )

        def scan(attendee: Attendee | None, camera: Camera, jpeg: bytes, shot: str) -> dict[str, Any]:
            who = attendee.person.name if attendee else "A stranger"
            answer = camera.scan(jpeg)
            result = expect(answer, 200, what=f"scan {who} at {names[camera.checkpoint_id]}")
            where = names[camera.checkpoint_id]
            story.unknown += int(not result["recognised"])
            story.already_stamped += int(result["recognised"] and not result["new_stamp"])
            story.masked_recognised += int(result["recognised"] and bool(result.get("masked")))
            if result["recognised"]:
                state = (
                    f"NEW STAMP {result['stamps']}/{result['required']}"
                    if result["new_stamp"]
                    else f"already stamped ({result['stamps']}/{result['required']}, {result['reason']})"
                )
                done = " - RALLY COMPLETE" if result["completed"] and result["new_stamp"] else ""
                masked = " [masked face]" if result.get("masked") else ""
                story.say(
                    f"{where} camera, {who} ({shot}){masked}: recognised as {result['nickname']}, "
                    f"{state}{done}"
                )
            else:
                story.say(
                    f"{where} camera, {who} ({shot}): not recognised, reason {result['reason']} "
                    f'- "{result["message"]}"'
                )
            return result

        def stamped(
            attendee: Attendee, camera: Camera, kind: int, stamps: int, *, masked: bool = False
        ) -> None:
            result = scan(attendee, camera, _shot(attendee.person, kind), SHOT_KINDS[kind])
            answer = Answer(200, result)
            _check(
                result["recognised"] and result["nickname"] == attendee.person.name,
                f"{attendee.person.name} at {names[camera.checkpoint_id]} should be recognised",
                answer,
            )
            _check(result["new_stamp"] and result["stamps"] == stamps, "a new stamp", answer)
            _check(result["completed"] == (stamps >= STAMPS_REQUIRED), "completion", answer)
            if masked:
                _check(bool(result["masked"]), "the masked shot should be seen as masked", answer)
            story.new_stamps += 1
            story.completions += int(stamps >= STAMPS_REQUIRED)
            pushes = 1 + int(stamps >= STAMPS_REQUIRED)
            story.pushes[str(attendee.participant_id)] = (
                story.pushes.get(str(attendee.participant_id), 0) + pushes
            )

        first, second = registered[0], registered[1]
        # -- the rally ---------------------------------------------------------------------
        story.say("")
        stamped(first, cameras[0], LIGHTING, 1)
        stamped(second, cameras[0], MASKED, 1, masked=True)
        for other in registered[2:]:
            stamped(other, cameras[0], LIGHTING, 1)
        stamped(first, cameras[1], ANGLE, 2)
        stamped(second, cameras[1], LIGHTING, 2)
        repeat = scan(first, cameras[0], _shot(first.person, COMPRESSED), "again, compressed frame")
        _check(
            repeat["recognised"] and repeat["already_stamped"] and not repeat["new_stamp"],
            "a repeat scan should be recognised as already stamped",
            Answer(200, repeat),
        )
        stranger_jpeg = cast.strangers[0] if cast.strangers else None
        if stranger_jpeg is not None:
            unknown = scan(None, cameras[1], stranger_jpeg, "never registered")
            _check(not unknown["recognised"], "a stranger must not be recognised", Answer(200, unknown))
        for attendee in refused[:1]:
            again = scan(attendee, cameras[2], _shot(attendee.person, LIGHTING), "registration was refused")
            _check(not again["recognised"], "a refused attendee is not in the gallery", Answer(200, again))
        stamped(first, cameras[2], COMPRESSED, 3)

        # -- the operator's view -----------------------------------------------------------
        story.say("")
        story.say("Progress (admin API):")
        for attendee in registered:
            body = expect(
                desk.call("GET", f"/v1/campaigns/{campaign_id}/participants/{attendee.participant_id}"),
                200,
                what=f"progress of {attendee.person.name}",
            )
            progress = body.get("progress", {})
            where = ", ".join(names.get(c, c) for c in progress.get("checkpoint_ids", [])) or "-"
            done = " COMPLETED" if progress.get("completed") else ""
            story.say(
                f"  {attendee.person.name:<10} {progress.get('stamps', 0)}/{STAMPS_REQUIRED} stamps "
                f"({where}){done}"
            )
        for attendee in refused:
            story.say(f"  {attendee.person.name:<10} not registered: {attendee.refusal}")
        history = expect(
            user("history").call("GET", f"/v1/campaigns/{campaign_id}/history"), 200, what="history"
        )
        events = history.get("items", history.get("events", []))
        story.say(f"History: {len(events)} recognition events recorded")
        refused_read = marketer.call("GET", f"/v1/campaigns/{campaign_id}/history")
        _check(refused_read.status == 403, "the marketer may not read the history", refused_read)
        audit = expect(auditor.call("GET", "/v1/audit?limit=100"), 200, what="audit log")
        entries = audit["items"]
        denied = [e for e in entries if e["outcome"] == "denied"]
        story.say(
            f"Audit log: {len(entries)} entries (e.g. {entries[-1]['actor']} {entries[-1]['action']}); "
            f"{len(denied)} refused (the marketer's history read: {denied[0]['action'] if denied else '-'})"
        )
        _check(len(denied) == 1, "exactly one refused action in the audit log", Answer(200, audit))

        # -- pushes: push_dispatch sent each job to the participant's phone (the local inbox) ------
        who = {a.participant_id: a.person.name for a in registered}
        delivered = 0
        story.say("Pushes to attendees (push_dispatch, local inbox):")
        for participant_id, expected in story.pushes.items():
            pushes = wait_for_pushes(stack.inbox_dir, participant_id, expected=expected)
            _check(len(pushes) == expected, f"{expected} pushes to {who[participant_id]}", Answer(200, {}))
            delivered += len(pushes)
            for push in pushes:
                story.say(f"  to {who[participant_id]}: {push['title']} / {push['body']}")
        sent = expect(
            marketer.call(
                "POST",
                f"/v1/campaigns/{campaign_id}/messages",
                {
                    "title": {"ja": "ご参加ありがとうございました", "en": "Thank you for playing"},
                    "body": {
                        "ja": "景品は案内所でお受け取りください。",
                        "en": "Collect your prize at the info desk.",
                    },
                    "segment": {"completed": True},
                },
            ),
            201,
            what="send a campaign message to the completers",
        )
        message = _message_delivered(marketer, campaign_id, sent["message_id"])
        _check(
            message["targeted"] == story.completions and message["delivered"] == story.completions,
            "the message reaches every completer",
            Answer(200, message),
        )
        story.say(
            f"Marketer: message to segment 'completed' - {message['targeted']} targeted, "
            f"{message['delivered']} delivered, {message['failed']} failed"
        )
        story.say(
            f"Account: {story.new_stamps} stamps awarded, {story.completions} rally completed, "
            f"{story.already_stamped} repeat scan answered 'already stamped', "
            f"{story.masked_recognised} masked face recognised, {story.unknown} unknown faces refused, "
            f"{len(refused)} registrations refused by the quality gate, {delivered} pushes delivered"
        )

        # -- VIP detection at a hotel -------------------------------------------------------
        story.say("")
        guests = [(a.person, _shot(a.person, LIGHTING)) for a in registered[:2]]
        vip = run_vip_scene(stack, guests, user, story.say)
        story.say(
            f"VIP account: {vip.alerts} alerts ({vip.with_profile} with CRM profile, "
            f"{vip.without_profile} without: CRM down), {vip.duplicates_suppressed} duplicate suppressed, "
            f"{vip.pushes} staff pushes; "
            f"frame to staff push {', '.join(f'{ms:.0f}' for ms in vip.alert_ms)} ms"
        )


def _message_delivered(client: AdminClient, campaign_id: str, message_id: str) -> dict[str, Any]:
    """The message once nothing is pending any more (or after 15 s: then as it is)."""
    deadline = time.monotonic() + 15
    while True:
        message = expect(
            client.call("GET", f"/v1/campaigns/{campaign_id}/messages/{message_id}"),
            200,
            what="message counts",
        )
        if message["pending"] == 0 or time.monotonic() > deadline:
            return message
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; 0 when every answer was the expected one."""
    parser = argparse.ArgumentParser(prog="python -m eventface.demo.run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--photos",
        type=Path,
        default=Path(os.environ["PHOTOS"]) if os.environ.get("PHOTOS") else None,
        help="your photos, one sub-folder per person (default: $PHOTOS, else the insightface wheel)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        cast = load_cast(photos_dir=args.photos)
        print(f"Photos: {cast.source}", flush=True)
        story = Story()
        run(cast, story)
    except (DemoPhotosError, StackError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    except (DemoFailedError, UnexpectedAnswerError) as exc:
        print(f"demo FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"\nDemo complete in {time.perf_counter() - started:.1f} s: every answer was the expected one.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
