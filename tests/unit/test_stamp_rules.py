"""Stamp rules of record_scan, with in-memory fakes and a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from eventface.domain.errors import ForbiddenError, InvalidInputError
from eventface.domain.model import Checkpoint, JobKind, Probe, RefusalReason, ScanOutcome
from eventface.services.scans import Scan

START = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
END = START + timedelta(hours=8)


def test_record_scan_awards_one_stamp_per_checkpoint(world, make_campaign, make_participant, scan_at):
    # given
    make_campaign(required=3)
    participant, photo = make_participant()
    # when
    result = scan_at(photo, "gate")
    # then
    assert result.recognised and result.new_stamp and not result.already_stamped
    assert (result.nickname, result.stamps, result.required, result.completed) == ("Ann", 1, 3, False)
    assert [s.checkpoint_id for s in world.stamps.stamps("acme", "rally", participant.participant_id)] == [
        "gate"
    ]


def test_record_scan_repeat_scan_says_already_stamped(world, make_campaign, make_participant, scan_at):
    # given
    make_campaign(required=3)
    _, photo = make_participant()
    scan_at(photo, "gate")
    world.clock.advance(3600)
    # when
    result = scan_at(photo, "gate")
    # then
    assert result.recognised and result.already_stamped and not result.new_stamp
    assert result.stamps == 1
    assert result.reason is None and result.message == "Already stamped at this checkpoint."


def test_record_scan_completes_exactly_once(world, make_campaign, make_participant, scan_at):
    # given
    make_campaign(required=2)
    _, photo = make_participant()
    # when
    first = scan_at(photo, "gate")
    second = scan_at(photo, "hall")
    third = scan_at(photo, "roof")
    # then
    assert [first.completed, second.completed, third.completed] == [False, True, True]
    assert [j.kind for j in world.ledger.jobs].count(JobKind.COMPLETION) == 1
    assert third.new_stamp and third.stamps == 3


def test_record_scan_queues_stamp_and_completion_jobs(world, make_campaign, make_participant, scan_at):
    # given
    make_campaign(required=2)
    participant, photo = make_participant()
    # when
    scan_at(photo, "gate")
    scan_at(photo, "hall")
    # then
    jobs = world.ledger.jobs
    assert [(j.kind, j.checkpoint_id, j.stamps) for j in jobs] == [
        (JobKind.STAMP, "gate", 1),
        (JobKind.STAMP, "hall", 2),
        (JobKind.COMPLETION, "hall", 2),
    ]
    assert {(j.participant_id, j.required) for j in jobs} == {(participant.participant_id, 2)}
    assert len({j.job_id for j in jobs}) == 3


def test_record_scan_repeat_scan_queues_nothing(world, make_campaign, make_participant, scan_at):
    # given
    make_campaign(required=3)
    _, photo = make_participant()
    scan_at(photo, "gate")
    world.clock.advance(3600)
    # when
    scan_at(photo, "gate")
    # then
    assert len(world.ledger.jobs) == 1


@pytest.mark.parametrize(
    "case",
    [
        (START - timedelta(seconds=1), True, False, RefusalReason.BEFORE_START),
        (END, True, False, RefusalReason.AFTER_END),
        (START + timedelta(hours=1), False, False, RefusalReason.CAMPAIGN_NOT_LIVE),
        (START + timedelta(hours=1), True, True, RefusalReason.CAMPAIGN_ENDED),
    ],
    ids=["before-start", "after-end", "draft", "ended"],
)
def test_record_scan_refuses_outside_window_or_live_state(
    world, make_campaign, make_participant, scan_at, case
):
    # given
    now, live, end, reason = case
    make_campaign(live=live)
    _, photo = make_participant()
    if end:
        world.services.end_campaign("acme", "rally")
    world.clock.set(now)
    # when
    result = scan_at(photo, "gate")
    # then
    assert not result.recognised and not result.new_stamp
    assert result.reason == reason.value and result.message
    assert world.ledger.jobs == []
    assert [e.outcome for e in world.history.events] == [ScanOutcome.REFUSED]


def test_record_scan_refuses_checkpoint_of_another_campaign(
    world, make_campaign, make_participant, make_device
):
    # given: a device bound to "gate", then "gate" moved out of the campaign before publishing
    make_campaign(live=False)
    device, _ = make_device("gate")
    world.services.remove_checkpoint("acme", "rally", "gate")
    world.services.add_checkpoint("acme", "rally", Checkpoint("x", "X"))
    world.services.publish_campaign("acme", "rally")
    _, photo = make_participant()
    # when
    result = world.services.record_scan(Scan(device, "gate", photo=photo))
    # then
    assert result.reason == RefusalReason.CHECKPOINT_NOT_IN_CAMPAIGN.value
    assert not result.new_stamp


def test_record_scan_device_of_other_checkpoint_is_forbidden(
    world, make_campaign, make_participant, make_device
):
    # given
    make_campaign()
    other = make_campaign("other", checkpoints=("lobby",), required=1)
    device, _ = make_device("lobby", other.campaign_id)
    _, photo = make_participant()
    # when / then
    with pytest.raises(ForbiddenError, match="bound to checkpoint lobby"):
        world.services.record_scan(Scan(device, "gate", photo=photo))


def test_record_scan_cooldown_stops_repeated_scans(world, make_campaign, make_participant, scan_at):
    # given
    make_campaign(required=3, cooldown=30)
    _, photo = make_participant()
    scan_at(photo, "gate")
    world.clock.advance(5)
    # when
    result = scan_at(photo, "gate")
    # then
    assert result.recognised and result.reason == "cooldown" and result.already_stamped
    assert not result.new_stamp and result.stamps == 1
    assert [e.outcome for e in world.history.events] == [ScanOutcome.STAMPED, ScanOutcome.COOLDOWN]


def test_record_scan_cooldown_expires(world, make_campaign, make_participant, scan_at):
    # given
    make_campaign(required=3, cooldown=30)
    _, photo = make_participant()
    scan_at(photo, "gate")
    world.clock.advance(31)
    # when
    result = scan_at(photo, "gate")
    # then
    assert result.already_stamped and result.reason is None


def test_record_scan_unknown_face_is_recorded(world, make_campaign, make_participant, scan_at):
    # given
    make_campaign()
    make_participant(axis=0)
    stranger = b"stranger"
    world.faces.faces[stranger] = tuple(1.0 if i == 1 else 0.0 for i in range(8))
    # when
    result = scan_at(stranger, "gate")
    # then
    assert not result.recognised and result.reason == "unknown"
    (event,) = world.history.events
    assert event.outcome is ScanOutcome.UNKNOWN and event.participant_id is None
    assert event.similarity == pytest.approx(0.0) and event.threshold == 0.9
    assert event.expires_at == event.at + timedelta(hours=72)
    assert world.ledger.jobs == []


def test_record_scan_no_face_is_recorded(world, make_campaign, scan_at):
    # given
    make_campaign()
    # when
    result = scan_at(b"an empty corridor", "gate")
    # then
    assert not result.recognised and result.reason == "no_face"
    assert [e.outcome for e in world.history.events] == [ScanOutcome.NO_FACE]


def test_record_scan_every_scan_is_in_history(world, make_campaign, make_participant, scan_at):
    # given
    make_campaign(required=2)
    participant, photo = make_participant()
    world.faces.masked.add(photo)
    # when
    results = [scan_at(photo, "gate"), scan_at(b"nobody", "gate"), scan_at(photo, "hall")]
    # then
    events = world.history.events
    assert [e.event_id for e in events] == [r.event_id for r in results]
    assert [e.outcome for e in events] == [ScanOutcome.STAMPED, ScanOutcome.NO_FACE, ScanOutcome.STAMPED]
    assert events[0].participant_id == participant.participant_id
    assert events[0].masked is True and events[0].similarity == pytest.approx(1.0)
    assert events[0].expires_at is None
    assert {e.device_id for e in events[::2]} != {None}


def test_record_scan_accepts_a_device_template(world, make_campaign, make_participant, make_device):
    # given
    make_campaign()
    make_participant(axis=2)
    device, _ = make_device("gate", type_b=True)
    probe = Probe(vector=tuple(1.0 if i == 2 else 0.0 for i in range(8)), model_id="fake-model")
    # when
    result = world.services.record_scan(Scan(device, "gate", template=probe))
    # then
    assert result.recognised and result.new_stamp


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"photo": b"x", "template": Probe((1.0,), "fake-model")}],
    ids=["neither", "both"],
)
def test_record_scan_needs_exactly_one_of_photo_and_template(world, make_campaign, make_device, kwargs):
    # given
    make_campaign()
    device, _ = make_device("gate")
    # when / then
    with pytest.raises(InvalidInputError, match="either a photo or a template"):
        world.services.record_scan(Scan(device, "gate", **kwargs))


def test_record_scan_template_of_another_model_is_refused(world, make_campaign, make_device):
    # given
    make_campaign()
    device, _ = make_device("gate", type_b=True)
    # when / then
    with pytest.raises(InvalidInputError, match="other-model"):
        world.services.record_scan(Scan(device, "gate", template=Probe((1.0,) * 8, "other-model")))
