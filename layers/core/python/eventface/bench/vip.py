"""``eventface bench vip``: a VIP sighting to the staff push on the local stack, CRM healthy and timing out.

The whole stack runs in this process (:func:`eventface.local.stack.running_stack`: moto, both
Chalice apps on loopback, the event pump, the loopback CRM). One venue is set up over HTTP as the
demo does it (:mod:`eventface.demo.vip`): a REST CRM connector on the loopback CRM (its sample field
map, the API key in Secrets Manager, ``--deadline-ms``), ``dedupe_minutes: 0`` so that every
recognised frame raises an alert, a few VIP members from the demo cast with the sample CRM
customer ids, one inbox staff device and an activated venue camera.

Each timed sample is one sighting: the clock starts just before the HTTP request and stops when
the push carrying that alert's id is in the staff device's inbox file (polled every
:data:`INBOX_POLL_S`). The HTTP answer time (the synchronous part: engine, gallery search, the alert
and its outbox job written in one transaction) is recorded too; it is the baseline of the same run:
``ratio_alert_to_answer`` = alert p50 / answer p50 says how much the asynchronous path (outbox
stream, relay, FIFO queue, ``vip_enrich``: CRM lookup, writes, push) adds. With the CRM "timing
out" (it answers :data:`TIMEOUT_FACTOR` times the deadline late) ``crm_down_minus_deadline_ms`` =
alert p50 - deadline says how close to the deadline the fallback alert ("profile unavailable")
lands.

Before every sample the venue's CRM connector is replaced by an identical one (the profile URL gets
a ``?bench_sample=<k>`` query the CRM ignores): a connector keeps profiles for five minutes and
opens its circuit breaker after five failures, so without it the healthy samples would measure the
profile cache instead of the CRM and the timing-out samples a paused CRM instead of the deadline.
A fresh connector reads its API key from Secrets Manager once; that read is part of every sample.

Where the time goes: the ``vip_enrich`` consumer is wrapped (:class:`ConsumerProbe`, registered
through ``running_stack(consumers=...)``; the pipeline itself is unchanged) to note when each job
reached it and the queue's ``SentTimestamp`` of its message; the push's own ``sent_at`` comes
from the inbox. Per sample, in order: ``answer`` (the HTTP request), ``outbox_to_queue`` (answer to
the relay's send: the stream poll and the relay), ``queue_to_consumer`` (the queue's long poll and
the pump), ``consumer_to_push`` (CRM lookup, alert writes, push) and ``push_to_seen`` (this
benchmark's inbox poll).

Prints the table, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

if TYPE_CHECKING:
    from eventface.demo.photos import DemoCast
    from eventface.local.client import AdminClient, VenueCamera
    from eventface.local.stack import LocalStack

DEFAULT_N: Final = 30
DEFAULT_DEADLINE_MS: Final = 500
#: The venue setting's bounds (``eventface.domain.vip.validate_crm``).
MIN_DEADLINE_MS: Final = 50
MAX_DEADLINE_MS: Final = 10_000
#: The healthy CRM's answer time.
CRM_LATENCY_S: Final = 0.05
#: The "timing out" CRM answers this many deadlines late.
TIMEOUT_FACTOR: Final = 2
#: Untimed sightings with the CRM timing out before its timed ones (the healthy warm-up is one
#: sighting of each member: engine, gallery, CRM connector, consumer and first pushes).
WARMUP_CRM_DOWN: Final = 1
#: A push that has not arrived this long after its sighting fails the benchmark.
PUSH_TIMEOUT_S: Final = 10.0
#: The inbox file is checked (a stat, and a read when it grew) this often.
INBOX_POLL_S: Final = 0.002
#: A venue camera may make 120 requests a minute: above this many sightings, cameras take turns.
SIGHTINGS_PER_CAMERA: Final = 100
SIGHTINGS_QUEUE: Final = "sightings"
STAGES: Final = ("answer", "outbox_to_queue", "queue_to_consumer", "consumer_to_push", "push_to_seen")
PROFILE_OK: Final = "ok"
PROFILE_UNAVAILABLE: Final = "unavailable"

Handler = Callable[[dict[str, Any], Any], Any]


class VipBenchError(RuntimeError):
    """The benchmark cannot go on (no alert, no push, no member recognised); the message says why."""


class NotRecognisedError(VipBenchError):
    """A member's frame was not recognised as that member, or raised no alert."""


# --------------------------------------------------------------------------- samples and summary


@dataclass(frozen=True, slots=True)
class Sample:
    """One timed sighting; every time in ms from just before the HTTP request."""

    answer_ms: float
    #: The push for this alert seen in the staff inbox.
    alert_ms: float
    profile_status: str
    #: The relay sent the alert job to the sightings queue (the message's SentTimestamp).
    queued_ms: float | None = None
    #: ``vip_enrich`` was handed the job.
    consumer_ms: float | None = None
    #: The inbox provider wrote the push (its ``sent_at``).
    pushed_ms: float | None = None


def percentiles(samples: Sequence[float]) -> tuple[float, float]:
    """(p50, p95) in the samples' unit, rounded to 0.01 (numpy's linear interpolation)."""
    if not samples:
        raise ValueError("percentiles need at least one sample")
    p50, p95 = np.percentile(np.asarray(samples, dtype=np.float64), [50, 95])
    return round(float(p50), 2), round(float(p95), 2)


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 3) if denominator > 0 else None


def stages(sample: Sample) -> dict[str, float | None]:
    """The sample's time split into :data:`STAGES` (ms; None where a timestamp is missing)."""

    def gap(later: float | None, earlier: float | None) -> float | None:
        return None if later is None or earlier is None else later - earlier

    return {
        "answer": sample.answer_ms,
        "outbox_to_queue": gap(sample.queued_ms, sample.answer_ms),
        "queue_to_consumer": gap(sample.consumer_ms, sample.queued_ms),
        "consumer_to_push": gap(sample.pushed_ms, sample.consumer_ms),
        "push_to_seen": gap(sample.alert_ms, sample.pushed_ms),
    }


def stage_medians(samples: Sequence[Sample]) -> dict[str, float | None]:
    """The p50 of every stage over the samples that have it (None when none has)."""
    split = [stages(s) for s in samples]
    medians: dict[str, float | None] = {}
    for stage in STAGES:
        values = [v for v in (row[stage] for row in split) if v is not None]
        medians[stage] = percentiles(values)[0] if values else None
    return medians


def summarise(
    healthy: Sequence[Sample],
    crm_down: Sequence[Sample],
    *,
    deadline_ms: int,
    crm_latency_ms: float,
    crm_timeout_latency_ms: float,
) -> dict[str, Any]:
    """The benchmark's JSON summary of both conditions (the keys of the last line)."""
    if not healthy or not crm_down:
        raise ValueError("summarise needs samples of both conditions (healthy CRM and CRM timing out)")
    alert_p50, alert_p95 = percentiles([s.alert_ms for s in healthy])
    answer_p50, answer_p95 = percentiles([s.answer_ms for s in healthy])
    down_p50, down_p95 = percentiles([s.alert_ms for s in crm_down])
    down_answer_p50, _ = percentiles([s.answer_ms for s in crm_down])
    after_p50, _ = percentiles([s.alert_ms - s.answer_ms for s in healthy])
    down_after_p50, _ = percentiles([s.alert_ms - s.answer_ms for s in crm_down])
    return {
        "alert_ms_p50": alert_p50,
        "alert_ms_p95": alert_p95,
        "alert_ms_p50_crm_down": down_p50,
        "alert_ms_p95_crm_down": down_p95,
        "answer_ms_p50": answer_p50,
        "answer_ms_p95": answer_p95,
        "answer_ms_p50_crm_down": down_answer_p50,
        "alert_after_answer_ms_p50": after_p50,
        "alert_after_answer_ms_p50_crm_down": down_after_p50,
        "ratio_alert_to_answer": _ratio(alert_p50, answer_p50),
        "ratio_alert_to_answer_crm_down": _ratio(down_p50, down_answer_p50),
        "crm_down_minus_deadline_ms": round(down_p50 - deadline_ms, 2),
        "deadline_ms": deadline_ms,
        "crm_latency_ms": crm_latency_ms,
        "crm_timeout_latency_ms": crm_timeout_latency_ms,
        "n": len(healthy),
        "n_crm_down": len(crm_down),
        "profile_ok": sum(s.profile_status == PROFILE_OK for s in healthy),
        "profile_unavailable_crm_down": sum(s.profile_status == PROFILE_UNAVAILABLE for s in crm_down),
        "stages_ms_p50": {"healthy": stage_medians(healthy), "crm_down": stage_medians(crm_down)},
    }


def _cell(value: float | None, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.1f}"


def format_table(summary: Mapping[str, Any]) -> str:
    """The human-readable report of a :func:`summarise` result."""
    n, down_n, deadline = summary["n"], summary["n_crm_down"], summary["deadline_ms"]
    rows = [
        (
            f"CRM healthy ({summary['crm_latency_ms']:.0f} ms)",
            summary["answer_ms_p50"],
            summary["answer_ms_p95"],
            summary["alert_ms_p50"],
            summary["alert_ms_p95"],
            summary["ratio_alert_to_answer"],
        ),
        (
            f"CRM timing out ({summary['crm_timeout_latency_ms']:.0f} ms)",
            summary["answer_ms_p50_crm_down"],
            None,
            summary["alert_ms_p50_crm_down"],
            summary["alert_ms_p95_crm_down"],
            summary["ratio_alert_to_answer_crm_down"],
        ),
    ]
    lines = [
        f"VIP sighting to staff push, ms (p50 / p95 of {n} + {down_n} sightings after warm-up; "
        f"CRM deadline {deadline} ms)",
        f"{'condition':<28} {'answer p50':>10} {'p95':>7} {'alert p50':>10} {'p95':>7} {'alert/answer':>13}",
    ]
    for name, answer50, answer95, alert50, alert95, ratio in rows:
        lines.append(
            f"{name:<28} {_cell(answer50, 10)} {_cell(answer95, 7)} {_cell(alert50, 10)} "
            f"{_cell(alert95, 7)} {_cell(ratio, 13)}"
        )
    lines.append("where the time goes, p50 per stage (ms from the previous stage):")
    lines.append(f"{'condition':<28} " + " ".join(f"{stage:>17}" for stage in STAGES))
    for label, key in (("CRM healthy", "healthy"), ("CRM timing out", "crm_down")):
        medians = summary["stages_ms_p50"][key]
        lines.append(f"{label:<28} " + " ".join(_cell(medians[stage], 17) for stage in STAGES))
    lines.append(
        f"profile 'ok' in {summary['profile_ok']}/{n} healthy alerts, 'unavailable' in "
        f"{summary['profile_unavailable_crm_down']}/{down_n} with the CRM timing out; the fallback alert "
        f"lands {summary['crm_down_minus_deadline_ms']:.1f} ms after the {deadline} ms deadline (p50)"
    )
    return "\n".join(lines)


def json_line(summary: Mapping[str, Any]) -> str:
    """The summary as the one-line JSON object printed last."""
    return json.dumps(summary, ensure_ascii=False)


def check_options(n: int, deadline_ms: int) -> tuple[int, int]:
    """``(n, deadline_ms)`` when usable; ValueError naming the option otherwise."""
    if n < 1:
        raise ValueError(f"--n must be at least 1 sighting per CRM condition, got {n}")
    if not MIN_DEADLINE_MS <= deadline_ms <= MAX_DEADLINE_MS:
        raise ValueError(
            f"--deadline-ms must be {MIN_DEADLINE_MS}-{MAX_DEADLINE_MS} (a venue's CRM deadline), "
            f"got {deadline_ms}"
        )
    return n, deadline_ms


def cameras_needed(sightings: int, per_camera: int = SIGHTINGS_PER_CAMERA) -> int:
    """How many venue cameras keep each under ``per_camera`` sightings (at least one)."""
    return max(1, math.ceil(sightings / per_camera))


def connector_url(template: str, sample: int) -> str:
    """The CRM profile URL of sample ``sample``: the same endpoint, a different connector."""
    separator = "&" if "?" in template else "?"
    return f"{template}{separator}bench_sample={sample}"


# --------------------------------------------------------------------------- the inbox and the consumer


class InboxWatcher:
    """The pushes appended to one inbox file (``<inbox_dir>/<recipient>.jsonl``) since the last look.

    A look is a ``stat``; the file is read only when it grew, and only from where the last read
    ended, up to the last complete line.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def skip_existing(self) -> None:
        """Ignore every push written so far."""
        self.new_pushes()

    def new_pushes(self) -> list[dict[str, Any]]:
        """The pushes written since the last call, oldest first."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size <= self._offset:
            return []
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            chunk = handle.read(size - self._offset)
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self._offset += end + 1
        return [json.loads(line) for line in chunk[: end + 1].splitlines() if line.strip()]


def match_push(pushes: Sequence[Mapping[str, Any]], alert_id: str) -> Mapping[str, Any] | None:
    """The push for ``alert_id`` (its ``data.alert_id``); when no push carries an alert id at all,
    the first one (one staff device, one alert at a time)."""
    for push in pushes:
        data = push.get("data")
        if isinstance(data, Mapping) and data.get("alert_id") == alert_id:
            return push
    if pushes and not any(isinstance(p.get("data"), Mapping) and p["data"].get("alert_id") for p in pushes):
        return pushes[0]
    return None


@dataclass(frozen=True, slots=True)
class JobTiming:
    """When ``vip_enrich`` got an alert job (``perf_counter``) and when its queue got it (epoch s)."""

    received: float
    queued_at: float | None = None
    finished: float | None = None


def _job_of(record: Mapping[str, Any]) -> tuple[str, float | None] | None:
    """(alert id, SentTimestamp in epoch seconds) of an SQS record; None if it is not an alert job."""
    try:
        body = json.loads(record.get("body") or "")
    except ValueError:
        return None
    alert_id = body.get("alert_id") if isinstance(body, dict) else None
    if not isinstance(alert_id, str):
        return None
    sent = (record.get("attributes") or {}).get("SentTimestamp")
    queued_at = int(sent) / 1000.0 if isinstance(sent, str | int) and str(sent).isdigit() else None
    return alert_id, queued_at


class ConsumerProbe:
    """The ``vip_enrich`` handler, noting when each alert job reached it and when it returned.

    Parameters
    ----------
    handler
        The consumer (``"module:function"``, imported on the first batch, after the stack has set
        the environment; or a callable).
    clock
        ``time.perf_counter`` by default.
    """

    def __init__(self, handler: str | Handler, clock: Callable[[], float] = time.perf_counter) -> None:
        self._reference = handler
        self._handler: Handler | None = None if isinstance(handler, str) else handler
        self._clock = clock
        self._changed = threading.Condition()
        self._jobs: dict[str, JobTiming] = {}

    def _target(self) -> Handler:
        if self._handler is None:
            from eventface.local.pump import load_handler

            self._handler = load_handler(str(self._reference))
        return self._handler

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        received = self._clock()
        jobs = [job for job in map(_job_of, event.get("Records", [])) if job is not None]
        with self._changed:
            for alert_id, queued_at in jobs:
                # A redelivered job keeps its first arrival: the retry is part of its path.
                self._jobs.setdefault(alert_id, JobTiming(received, queued_at))
        try:
            return self._target()(event, context)
        finally:
            finished = self._clock()
            with self._changed:
                for alert_id, _ in jobs:
                    self._jobs[alert_id] = replace(self._jobs[alert_id], finished=finished)
                self._changed.notify_all()

    def timing(self, alert_id: str) -> JobTiming | None:
        """What is known of the job of ``alert_id`` so far."""
        with self._changed:
            return self._jobs.get(alert_id)

    def wait_finished(self, alert_id: str, timeout_s: float) -> JobTiming | None:
        """The job's timing once the consumer returned from it (or after ``timeout_s``: as it is)."""
        with self._changed:
            self._changed.wait_for(
                lambda: (job := self._jobs.get(alert_id)) is not None and job.finished is not None,
                timeout=timeout_s,
            )
            return self._jobs.get(alert_id)


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True, slots=True)
class Member:
    """A registered VIP member and the camera frame they are sighted with."""

    name: str
    member_id: str
    frame: bytes


@dataclass
class VenueBench:
    """One venue on the running stack, and how to time a sighting there."""

    stack: LocalStack
    owner: AdminClient
    venue_id: str
    crm: dict[str, Any]
    members: list[Member]
    cameras: list[VenueCamera]
    staff_device_id: str
    probe: ConsumerProbe
    inbox: InboxWatcher
    sightings: int = 0

    def fresh_connector(self, sample: int) -> None:
        """Give the venue an identical CRM connector: empty profile cache, closed breaker."""
        from eventface.local.client import expect

        crm = {**self.crm, "url": connector_url(self.crm["url"], sample)}
        expect(
            self.owner.call("PATCH", f"/v1/venues/{self.venue_id}", {"crm": crm}),
            200,
            what="give the venue a fresh CRM connector",
        )

    def sample(self, member: Member) -> Sample:
        """Sight ``member`` once and time it up to the staff push (module docstring)."""
        from eventface.local.client import expect

        number = self.sightings
        self.sightings += 1
        self.fresh_connector(number)
        camera = self.cameras[(number // SIGHTINGS_PER_CAMERA) % len(self.cameras)]
        self.inbox.skip_existing()
        started, started_wall = time.perf_counter(), time.time()
        answer = camera.sight(member.frame)
        answered = time.perf_counter()
        body = expect(answer, 200, what=f"sighting of {member.name}")
        face = next(
            (f for f in body.get("faces", []) if f.get("vip") and f.get("member_id") == member.member_id),
            None,
        )
        if face is None or not face.get("alerted") or not face.get("alert_id"):
            raise NotRecognisedError(
                f"the sighting of {member.name} raised no alert for them (answer {body}); with the "
                "venue's dedupe window at 0 minutes every recognised frame should"
            )
        alert_id = str(face["alert_id"])
        push, seen = self._await_push(alert_id, member, started)
        job = self.probe.wait_finished(alert_id, PUSH_TIMEOUT_S)

        def since_start(perf: float | None = None, wall: float | None = None) -> float | None:
            if perf is not None:
                return (perf - started) * 1000.0
            return None if wall is None else (wall - started_wall) * 1000.0

        data = push.get("data")
        return Sample(
            answer_ms=(answered - started) * 1000.0,
            alert_ms=(seen - started) * 1000.0,
            profile_status=str(data.get("profile_status", "")) if isinstance(data, Mapping) else "",
            queued_ms=since_start(wall=job.queued_at) if job else None,
            consumer_ms=since_start(perf=job.received) if job else None,
            pushed_ms=since_start(wall=_epoch(push.get("sent_at"))),
        )

    def _await_push(self, alert_id: str, member: Member, started: float) -> tuple[Mapping[str, Any], float]:
        deadline = started + PUSH_TIMEOUT_S
        while True:
            push = match_push(self.inbox.new_pushes(), alert_id)
            now = time.perf_counter()
            if push is not None:
                return push, now
            if now >= deadline:
                break
            time.sleep(INBOX_POLL_S)
        job = self.probe.timing(alert_id)
        if job is None:
            where = (
                "vip_enrich never got the alert job: the outbox relay or the sightings queue is stuck "
                f"(look at the pump's errors above and the queue {self.stack.sighting_queue_url})"
            )
        elif job.finished is None:
            where = "vip_enrich got the alert job and has not returned from it"
        else:
            where = (
                "vip_enrich returned from the alert job without a push to this device (a failed job is "
                f"retried and then moved to {self.stack.sighting_dlq_url})"
            )
        raise VipBenchError(
            f"no push for alert {alert_id} ({member.name}) reached staff device {self.staff_device_id} "
            f"({self.inbox.path}) within {PUSH_TIMEOUT_S:.0f} s of the sighting: {where}"
        )


def _epoch(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def set_up_venue(
    stack: LocalStack,
    cast: DemoCast,
    *,
    deadline_ms: int,
    sightings: int,
    probe: ConsumerProbe,
    say: Callable[[str], None],
) -> VenueBench:
    """The venue, its members (the cast's first faces that pass the quality gate, with the sample
    CRM ids), one inbox staff device and enough activated cameras for ``sightings``."""
    import base64

    from eventface.local.client import AdminClient, VenueCamera, expect
    from eventface.local.crm_server import SAMPLE_FIELD_MAP, SAMPLE_PROFILES

    def user(name: str) -> AdminClient:
        return AdminClient.signed_in(stack.admin_url, stack.user_pool, name, stack.users[name])

    owner, desk, staff, terminals = user("owner"), user("targets"), user("venue-staff"), user("terminals")
    crm = {
        "kind": "rest",
        "url": stack.crm.profile_url_template,
        "field_map": dict(SAMPLE_FIELD_MAP),
        "secret_id": stack.crm_secret_id,
        "deadline_ms": deadline_ms,
    }
    venue_id = str(
        expect(
            owner.call("POST", "/v1/venues", {"name": "Bench Hotel", "dedupe_minutes": 0, "crm": crm}),
            201,
            what="create the venue",
        )["venue_id"]
    )
    members: list[Member] = []
    customers = list(SAMPLE_PROFILES)
    for person in cast.people:
        if len(members) == len(customers):
            break
        customer_id = customers[len(members)]
        answer = desk.call(
            "POST",
            f"/v1/venues/{venue_id}/members",
            {
                "name": person.name,
                "photo": base64.b64encode(person.registration).decode(),
                "crm_customer_id": customer_id,
            },
        )
        if answer.status == 422:  # refused by the quality gate: the next person gets this customer id
            continue
        member = expect(answer, 201, what=f"register VIP {person.name}")
        members.append(Member(person.name, str(member["member_id"]), person.camera_shots[0]))
    if not members:
        raise VipBenchError("no person of the cast passed the quality gate: no VIP member to sight")
    device = expect(
        staff.call(
            "POST",
            f"/v1/venues/{venue_id}/staff-devices",
            {"name": "Front desk", "platform": "inbox", "locale": "en"},
        ),
        201,
        what="subscribe the staff device",
    )
    cameras = []
    for number in range(cameras_needed(sightings)):
        registration = expect(
            terminals.call("POST", f"/v1/venues/{venue_id}/devices", {"name": f"Lobby camera {number + 1}"}),
            201,
            what="register a lobby camera",
        )
        cameras.append(VenueCamera.activated(stack.edge_url, registration["activation_code"]))
    staff_device_id = str(device["staff_device_id"])
    say(
        f"venue {venue_id}: CRM {stack.crm.profile_url_template} (deadline {deadline_ms} ms), dedupe 0 min, "
        f"{len(members)} VIP members ({', '.join(m.name for m in members)}), 1 inbox staff device, "
        f"{len(cameras)} camera(s)"
    )
    return VenueBench(
        stack=stack,
        owner=owner,
        venue_id=venue_id,
        crm=crm,
        members=members,
        cameras=cameras,
        staff_device_id=staff_device_id,
        probe=probe,
        inbox=InboxWatcher(stack.inbox_dir / f"{staff_device_id}.jsonl"),
    )


def run(
    n: int, deadline_ms: int, photos_dir: Path | None, say: Callable[[str], None]
) -> tuple[list[Sample], list[Sample]]:
    """Start the stack, set the venue up, warm up, then ``n`` timed sightings per CRM condition."""
    from eventface.demo.photos import load_cast
    from eventface.local.pump import CONSUMERS
    from eventface.local.stack import running_stack

    cast = load_cast(photos_dir=photos_dir)
    probe = ConsumerProbe(CONSUMERS[SIGHTINGS_QUEUE])
    started = time.perf_counter()
    with running_stack(consumers={**CONSUMERS, SIGHTINGS_QUEUE: probe}) as stack:
        say(f"local stack up in {time.perf_counter() - started:.1f} s: edge {stack.edge_url}")
        sightings = len(cast.people) + n + WARMUP_CRM_DOWN + n
        bench = set_up_venue(stack, cast, deadline_ms=deadline_ms, sightings=sightings, probe=probe, say=say)
        stack.crm.set_latency(CRM_LATENCY_S)
        recognised = []
        for member in bench.members:  # the warm-up: one sighting of each member
            try:
                bench.sample(member)
                recognised.append(member)
            except NotRecognisedError as exc:
                say(f"warm-up: {member.name} left out: {exc}")
        if not recognised:
            raise VipBenchError("no VIP member's camera frame was recognised in the warm-up: nothing to time")
        say(f"warm-up done: {len(recognised)} members; {n} sightings with the CRM answering in 50 ms")
        healthy = [bench.sample(recognised[i % len(recognised)]) for i in range(n)]
        timeout_s = deadline_ms * TIMEOUT_FACTOR / 1000.0
        stack.crm.set_latency(timeout_s)
        say(f"{n} sightings with the CRM answering in {timeout_s * 1000:.0f} ms (past the deadline)")
        for i in range(WARMUP_CRM_DOWN):
            bench.sample(recognised[i % len(recognised)])
        crm_down = [bench.sample(recognised[i % len(recognised)]) for i in range(n)]
        stack.crm.set_latency(0.0)
    return healthy, crm_down


def main(args: argparse.Namespace) -> int:
    """``eventface bench vip``: the table, then the JSON summary as the last line."""
    from eventface.demo.photos import DemoPhotosError
    from eventface.local.client import UnexpectedAnswerError
    from eventface.local.stack import StackError

    n, deadline_ms = check_options(args.n, args.deadline_ms)
    photos = Path(os.environ["PHOTOS"]) if os.environ.get("PHOTOS") else None

    def say(line: str) -> None:
        print(line, flush=True)

    try:
        healthy, crm_down = run(n, deadline_ms, photos, say)
    except (DemoPhotosError, StackError) as exc:
        print(f"eventface bench vip: {exc}", file=sys.stderr)
        return 2
    except (VipBenchError, UnexpectedAnswerError) as exc:
        print(f"eventface bench vip FAILED: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # urllib's URLError and timeouts: the stack stopped answering
        print(f"eventface bench vip FAILED: a request to the local stack failed: {exc}", file=sys.stderr)
        return 1
    summary = summarise(
        healthy,
        crm_down,
        deadline_ms=deadline_ms,
        crm_latency_ms=CRM_LATENCY_S * 1000,
        crm_timeout_latency_ms=deadline_ms * TIMEOUT_FACTOR,
    )
    if summary["profile_ok"] < n or summary["profile_unavailable_crm_down"] < n:
        print(
            f"eventface bench vip: warning: profile 'ok' in {summary['profile_ok']}/{n} healthy alerts and "
            f"'unavailable' in {summary['profile_unavailable_crm_down']}/{n} with the CRM timing out: "
            "some samples did not take the path their condition is about",
            file=sys.stderr,
        )
    print()
    print(format_table(summary))
    print(json_line(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(argparse.Namespace(n=DEFAULT_N, deadline_ms=DEFAULT_DEADLINE_MS)))
