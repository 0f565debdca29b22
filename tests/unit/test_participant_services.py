"""register_participant, get_progress, list_participants and erase_participant with fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from eventface.domain.errors import (
    DependencyError,
    FaceNotFoundError,
    FaceQualityError,
    InvalidInputError,
    NotFoundError,
    QualityReason,
    StateConflictError,
)
from eventface.services.participants import Registration


def _registration(photo=b"enrol", **changes):
    values: dict[str, object] = {"nickname": "Ann", "consent": True, "push_endpoint": None} | changes
    return Registration("acme", "rally", photo, **values)  # type: ignore[arg-type]


def test_register_participant_adds_record_and_templates(world, make_campaign):
    # given
    make_campaign()
    world.faces.faces[b"enrol"] = (1.0, 0.0)
    # when
    participant = world.services.register_participant(_registration(nickname="  Ann  "))
    # then
    assert participant.nickname == "Ann" and participant.consent.given
    assert participant.consent.at == world.clock.now() and participant.template_count == 2
    assert world.participants.get("acme", "rally", participant.participant_id) == participant
    assert set(world.gallery.templates["acme/rally"]) == {participant.participant_id}


def test_register_participant_surfaces_quality_reasons(world, make_campaign):
    # given
    make_campaign()
    world.faces.faces[b"enrol"] = (1.0, 0.0)
    reasons = (QualityReason("too_dark", "find more light"), QualityReason("head_turned", "face the camera"))
    world.faces.quality_reasons[b"enrol"] = reasons
    # when
    with pytest.raises(FaceQualityError) as caught:
        world.services.register_participant(_registration())
    # then
    assert caught.value.reasons == reasons
    assert world.participants.list("acme", "rally").items == ()
    assert world.gallery.templates == {}


def test_register_participant_takes_the_record_back_when_the_gallery_write_fails(
    world, make_campaign, monkeypatch
):
    # given: the gallery store is down
    make_campaign()
    world.faces.faces[b"enrol"] = (1.0, 0.0)

    def down(*args: object) -> None:
        raise DependencyError("storing the templates failed (S3 down): retry the registration")

    monkeypatch.setattr(world.gallery, "add", down)
    # when
    with pytest.raises(DependencyError, match="retry the registration"):
        world.services.register_participant(_registration())
    # then: no faceless participant is left behind for the retry to duplicate
    assert world.participants.list("acme", "rally").items == ()


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"consent": False}, "consent is required"),
        ({"nickname": "   "}, "nickname"),
        ({"nickname": "x" * 41}, "nickname"),
        ({"push_endpoint": ""}, "push_token must be '<platform>:<token>'"),
        ({"push_endpoint": "carrier-pigeon:42"}, "platform one of apns, fcm, webhook, inbox"),
        ({"push_endpoint": "fcm:"}, "needs token"),
        ({"locale": "fr"}, "locale must be one of ja, en"),
    ],
    ids=[
        "no-consent",
        "blank-nickname",
        "long-nickname",
        "empty-push-endpoint",
        "unknown-platform",
        "no-token",
        "unknown-locale",
    ],
)
def test_register_participant_rejects_invalid_input(world, make_campaign, changes, match):
    # given
    make_campaign()
    world.faces.faces[b"enrol"] = (1.0, 0.0)
    # when / then
    with pytest.raises(InvalidInputError, match=match):
        world.services.register_participant(_registration(**changes))


def test_register_participant_without_face_fails(world, make_campaign):
    # given
    make_campaign()
    # when / then
    with pytest.raises(FaceNotFoundError):
        world.services.register_participant(_registration(photo=b"no face here"))


def test_register_participant_in_ended_campaign_fails(world, make_campaign):
    # given
    make_campaign()
    world.services.end_campaign("acme", "rally")
    world.faces.faces[b"enrol"] = (1.0, 0.0)
    # when / then
    with pytest.raises(StateConflictError, match="registration is closed"):
        world.services.register_participant(_registration())


def test_get_progress_reports_stamps(world, make_campaign, make_participant, scan_at):
    # given
    make_campaign(required=2)
    participant, photo = make_participant()
    scan_at(photo, "hall")
    # when
    _, progress = world.services.get_progress("acme", "rally", participant.participant_id)
    # then
    assert progress.checkpoint_ids == {"hall"} and progress.completed_at is None


def test_list_participants_pages_with_cursor(world, make_campaign, make_participant):
    # given
    make_campaign()
    registered = {make_participant(axis=i, nickname=f"p{i}")[0].participant_id for i in range(3)}
    # when
    first = world.services.list_participants("acme", "rally", limit=2)
    second = world.services.list_participants("acme", "rally", limit=2, cursor=first.cursor)
    # then
    assert len(first.items) == 2 and first.cursor is not None
    assert len(second.items) == 1 and second.cursor is None
    assert {p.participant_id for p in first.items + second.items} == registered


def test_erase_participant_removes_everything(world, make_campaign, make_participant, scan_at):
    # given
    make_campaign(required=2)
    participant, photo = make_participant(axis=0)
    other, other_photo = make_participant(axis=1, nickname="Bob")
    scan_at(photo, "gate")
    scan_at(photo, "hall")
    scan_at(other_photo, "gate")
    pid = participant.participant_id
    # when
    receipt = world.services.erase_participant("acme", "rally", pid)
    # then
    assert receipt.verified and receipt.record_deleted and receipt.templates_deleted
    assert (receipt.stamps_deleted, receipt.history_deleted) == (2, 2)
    with pytest.raises(NotFoundError):
        world.services.get_progress("acme", "rally", pid)
    assert pid not in world.gallery.templates["acme/rally"]
    assert world.stamps.stamps("acme", "rally", pid) == []
    assert world.history.for_participant("acme", "rally", pid) == ()
    assert [e.participant_id for e in world.history.events] == [other.participant_id]
    world.clock.advance(3600)
    assert scan_at(photo, "roof").recognised is False


def test_erase_participant_twice_is_idempotent(world, make_campaign, make_participant):
    # given
    make_campaign()
    participant, _ = make_participant()
    world.services.erase_participant("acme", "rally", participant.participant_id)
    # when
    receipt = world.services.erase_participant("acme", "rally", participant.participant_id)
    # then
    assert receipt.verified and not receipt.record_deleted and receipt.stamps_deleted == 0


def test_erase_participant_receipt_states_each_store_and_until_when_templates_stay(
    world, make_campaign, make_participant
):
    # given: a sweep every 5 minutes, and gallery objects kept 1 h for readers
    make_campaign()
    participant, _ = make_participant()
    erased_at = world.clock.now()
    # when
    receipt = world.services.erase_participant("acme", "rally", participant.participant_id)
    # then: what is gone now, what stays until when (grace + 4 sweep periods), and why
    states = {s.store: (s.state.value, s.pending_until) for s in receipt.stores}
    assert receipt.erased_at == erased_at
    assert states == {
        "record": ("erased", None),
        "stamps": ("erased", None),
        "history": ("erased", None),
        "gallery_objects": ("pending", erased_at + timedelta(hours=1, minutes=20)),
        "scanner_memory": ("pending", None),
        "notification_jobs": ("erased", None),
    }
    assert all(s.detail for s in receipt.stores if s.state.value == "pending")


def test_erase_participant_of_a_campaign_without_gallery_has_no_templates_pending(world, make_campaign):
    # given: a campaign nobody registered for (its gallery was never written)
    make_campaign()
    # when
    receipt = world.services.erase_participant("acme", "rally", "nobody")
    # then
    states = {s.store: s.state.value for s in receipt.stores}
    assert states["gallery_objects"] == states["scanner_memory"] == "erased"
