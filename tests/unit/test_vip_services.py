"""Venues, VIP members, staff devices and sightings on the in-memory fakes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from eventface.adapters.memory import unit_vector
from eventface.domain.errors import (
    FaceQualityError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    QualityReason,
    StateConflictError,
)
from eventface.domain.model import DeviceCredential, Probe
from eventface.domain.vip import CrmConfig, CrmKind, ProfileStatus, Venue, VipMember
from eventface.services import devices, sightings, venues
from eventface.services.sightings import Sighting

TENANT = "acme"  # the unit fixtures' tenant


def _face(axis: int) -> tuple[float, ...]:
    return unit_vector(*[1.0 if i == axis else 0.0 for i in range(8)])


@pytest.fixture
def venue(world: Any) -> Venue:
    return venues.create_venue(world.services.deps, TENANT, "Grand Hotel", dedupe_minutes=30)


def _member(world: Any, venue: Venue, axis: int, name: str = "Sato Hanako") -> VipMember:
    photo = f"vip-{axis}".encode()
    world.faces.faces[photo] = _face(axis)
    world.faces.faces[f"frame-{axis}".encode()] = _face(axis)
    return venues.add_member(
        world.services.deps,
        venues.MemberRegistration(
            TENANT, venue.venue_id, photo, name, tier="Platinum", crm_customer_id="C-1"
        ),
    )


def _camera(world: Any, venue: Venue, *, type_b: bool = False) -> DeviceCredential:
    registration = devices.register_venue_device(
        world.services.deps, TENANT, venue.venue_id, "lobby", type_b=type_b
    )
    key = devices.activate_device(world.services.deps, registration.activation_code).key
    return devices.authenticate_device(world.services.deps, key)


def _sight(world: Any, camera: DeviceCredential, frame: bytes, venue_id: str | None = None):
    return sightings.record_sighting(
        world.services.deps, Sighting(device=camera, venue_id=venue_id or str(camera.venue_id), photo=frame)
    )


def test_member_is_greeted_and_alerted_once_per_window(world, venue):
    # given
    member = _member(world, venue, 0)
    camera = _camera(world, venue)
    # when: the guest arrives, then stands in the lobby for 29 minutes
    first = _sight(world, camera, b"frame-0")
    world.clock.advance(29 * 60)
    standing = _sight(world, camera, b"frame-0")
    world.clock.advance(2 * 60)
    later = _sight(world, camera, b"frame-0")
    # then
    (face,) = first.faces
    assert first.vip and face.name == "Sato Hanako" and face.tier == "Platinum" and face.alerted
    assert standing.vip and not standing.faces[0].alerted and standing.faces[0].alert_id is None
    assert later.faces[0].alerted
    alerts = world.alerts.list(TENANT, venue.venue_id).items
    assert [a.alert_id for a in alerts] == [later.faces[0].alert_id, face.alert_id]
    assert alerts[1].member_id == member.member_id and alerts[1].profile_status is ProfileStatus.PENDING
    assert alerts[1].expires_at == alerts[1].sighted_at + timedelta(days=90)  # the alert retention
    assert [j.alert_id for j in world.alerts.jobs] == [face.alert_id, later.faces[0].alert_id]


def test_every_face_of_a_frame_is_searched(world, venue):
    # given: two VIPs and a stranger in one frame
    _member(world, venue, 0, "Sato Hanako")
    _member(world, venue, 1, "John Smith")
    world.faces.faces[b"stranger"] = _face(5)
    world.faces.groups[b"group"] = (b"frame-0", b"stranger", b"frame-1")
    camera = _camera(world, venue)
    # when
    result = _sight(world, camera, b"group")
    # then
    assert [(f.vip, f.name, f.alerted) for f in result.faces] == [
        (True, "Sato Hanako", True),
        (False, None, False),
        (True, "John Smith", True),
    ]
    assert len(world.alerts.jobs) == 2


def test_the_same_member_twice_in_a_frame_makes_one_alert(world, venue):
    # given
    _member(world, venue, 0)
    world.faces.groups[b"mirror"] = (b"frame-0", b"frame-0")
    camera = _camera(world, venue)
    # when
    result = _sight(world, camera, b"mirror")
    # then
    assert [f.alerted for f in result.faces] == [True, False] and len(world.alerts.jobs) == 1


def test_dedupe_zero_alerts_on_every_frame(world):
    # given
    venue = venues.create_venue(world.services.deps, TENANT, "Gym", dedupe_minutes=0)
    _member(world, venue, 0)
    camera = _camera(world, venue)
    # when
    results = [_sight(world, camera, b"frame-0") for _ in range(3)]
    # then
    assert all(r.faces[0].alerted for r in results)


def test_frame_without_a_known_face_is_an_answer_and_is_audited(world, venue):
    # given
    camera = _camera(world, venue)
    world.faces.faces[b"stranger"] = _face(6)
    # when
    empty = _sight(world, camera, b"no face here")
    stranger = _sight(world, camera, b"stranger")
    # then
    assert empty.faces == () and not empty.vip
    assert len(stranger.faces) == 1 and not stranger.vip and world.alerts.jobs == []
    entries = [e for e in world.audit.list(TENANT).items if e.action == "sighting"]
    assert len(entries) == 2 and all(e.actor == f"device:{camera.device_id}" for e in entries)


def test_alerting_sighting_is_audited_once(world, venue):
    # given
    _member(world, venue, 0)
    camera = _camera(world, venue)
    # when
    _sight(world, camera, b"frame-0")
    _sight(world, camera, b"frame-0")
    # then
    assert len([e for e in world.audit.list(TENANT).items if e.action == "sighting"]) == 2


def test_type_b_template_is_searched(world, venue):
    # given
    _member(world, venue, 2)
    camera = _camera(world, venue, type_b=True)
    # when
    result = sightings.record_sighting(
        world.services.deps,
        Sighting(device=camera, venue_id=venue.venue_id, template=Probe(_face(2), world.faces.model_id)),
    )
    # then
    assert result.faces[0].vip and result.faces[0].alerted


def test_camera_of_another_venue_or_a_checkpoint_is_refused(world, venue, make_campaign, make_device):
    # given
    other = venues.create_venue(world.services.deps, TENANT, "Golf Club")
    camera = _camera(world, venue)
    make_campaign()
    _, checkpoint_key = make_device()
    checkpoint_camera = devices.authenticate_device(world.services.deps, checkpoint_key)
    # when / then
    with pytest.raises(ForbiddenError, match="not a camera of venue"):
        _sight(world, camera, b"frame-0", venue_id=other.venue_id)
    with pytest.raises(ForbiddenError, match="not a camera of venue"):
        _sight(world, checkpoint_camera, b"frame-0", venue_id=venue.venue_id)


def test_venue_camera_cannot_scan_at_a_checkpoint(world, venue):
    # given
    from eventface.services.scans import Scan

    camera = _camera(world, venue)
    # when / then
    with pytest.raises(ForbiddenError, match="/sightings"):
        world.services.record_scan(Scan(device=camera, checkpoint_id="gate", photo=b"x"))


def test_sighting_needs_exactly_one_of_photo_and_template(world, venue):
    camera = _camera(world, venue)
    with pytest.raises(InvalidInputError, match="either a photo or a template"):
        sightings.record_sighting(world.services.deps, Sighting(device=camera, venue_id=venue.venue_id))


def test_erased_member_is_no_longer_recognised_and_their_alerts_are_gone(world, venue):
    # given: a member alerted once, and another member's alert
    member = _member(world, venue, 0)
    _member(world, venue, 1, "John Smith")
    camera = _camera(world, venue)
    _sight(world, camera, b"frame-0")
    _sight(world, camera, b"frame-1")
    # when
    erasure = venues.erase_member(world.services.deps, TENANT, venue.venue_id, member.member_id)
    result = _sight(world, camera, b"frame-0")
    again = venues.erase_member(world.services.deps, TENANT, venue.venue_id, member.member_id)
    # then
    assert (erasure.record_deleted, erasure.templates_deleted, erasure.alerts_deleted) == (True, True, 1)
    assert not result.vip
    assert [a.name for a in world.alerts.list(TENANT, venue.venue_id).items] == ["John Smith"]
    assert (again.record_deleted, again.alerts_deleted) == (False, 0)


def test_member_with_a_bad_photo_leaves_no_record(world, venue):
    # given
    world.faces.faces[b"blurry"] = _face(3)
    world.faces.quality_reasons[b"blurry"] = (QualityReason("blur", "the face is blurred"),)
    # when / then
    with pytest.raises(FaceQualityError):
        venues.add_member(
            world.services.deps, venues.MemberRegistration(TENANT, venue.venue_id, b"blurry", "X")
        )
    assert world.vip_members.list(TENANT, venue.venue_id).items == ()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": ""}, "name must be"),
        ({"dedupe_minutes": -1}, "dedupe_minutes"),
        ({"crm": CrmConfig(CrmKind.REST, "https://crm.example/customers")}, "customer_id"),
        ({"crm": CrmConfig(CrmKind.REST, "https://crm.example/{customer_id}")}, "field_map"),
        ({"crm": CrmConfig(CrmKind.WEBHOOK, "https://crm.example/hook")}, "secret_id is required"),
        ({"crm": CrmConfig(CrmKind.REST, "ftp://x/{customer_id}", {"name": "n"})}, "http"),
        ({"crm": CrmConfig(deadline_ms=5)}, "deadline_ms"),
    ],
)
def test_venue_settings_are_checked(world, kwargs, match):
    values = {"name": "Hotel"} | kwargs
    name = values.pop("name")
    with pytest.raises(InvalidInputError, match=match):
        venues.create_venue(world.services.deps, TENANT, name, **values)


def test_venue_update_keeps_what_is_not_changed_and_detects_conflicts(world, venue):
    # given
    crm = CrmConfig(CrmKind.REST, "https://crm.example/customers/{customer_id}", {"name": "profile.name"})
    # when
    updated = venues.update_venue(world.services.deps, TENANT, venue.venue_id, venues.VenueChanges(crm=crm))
    # then
    assert updated.name == "Grand Hotel" and updated.crm == crm and updated.version == venue.version + 1
    with pytest.raises(StateConflictError):
        world.venues.save(venue)


def test_staff_devices_are_subscribed_checked_and_listed(world, venue):
    deps = world.services.deps
    phone = venues.subscribe_staff_device(
        deps, TENANT, venue.venue_id, name="Front desk", platform="fcm", token="t1"
    )
    inbox = venues.subscribe_staff_device(
        deps, TENANT, venue.venue_id, name="Board", platform="inbox", locale="en"
    )
    assert {d.staff_device_id for d in venues.list_staff_devices(deps, TENANT, venue.venue_id)} == {
        phone.staff_device_id,
        inbox.staff_device_id,
    }
    with pytest.raises(InvalidInputError, match="platform 'pager'"):
        venues.subscribe_staff_device(deps, TENANT, venue.venue_id, name="x", platform="pager")
    with pytest.raises(InvalidInputError, match="needs token"):
        venues.subscribe_staff_device(deps, TENANT, venue.venue_id, name="x", platform="apns")
    with pytest.raises(InvalidInputError, match="locale"):
        venues.subscribe_staff_device(deps, TENANT, venue.venue_id, name="x", platform="inbox", locale="de")
    with pytest.raises(NotFoundError):
        venues.subscribe_staff_device(deps, TENANT, "nowhere", name="x", platform="inbox")
    assert venues.unsubscribe_staff_device(deps, TENANT, venue.venue_id, phone.staff_device_id)
    assert not venues.unsubscribe_staff_device(deps, TENANT, venue.venue_id, phone.staff_device_id)


def test_venue_of_another_tenant_is_not_found(world, venue):
    with pytest.raises(NotFoundError):
        venues.get_venue(world.services.deps, "other", venue.venue_id)
    with pytest.raises(NotFoundError):
        devices.register_venue_device(world.services.deps, "other", venue.venue_id)


def test_dedupe_window_is_per_venue(world, venue):
    # given: the same person is a VIP of two venues
    other = venues.create_venue(world.services.deps, TENANT, "Golf Club")
    _member(world, venue, 0)
    _member(world, other, 0)
    # when
    here = _sight(world, _camera(world, venue), b"frame-0")
    there = _sight(world, _camera(world, other), b"frame-0")
    # then
    assert here.faces[0].alerted and there.faces[0].alerted
    assert (
        world.clock.now() - timedelta(seconds=1)
        < world.alerts.list(TENANT, other.venue_id).items[0].sighted_at
    )


def test_erased_member_receipt_states_each_store_and_until_when_templates_stay(world, venue):
    # given
    member = _member(world, venue, 0)
    erased_at = world.clock.now()
    # when
    erasure = venues.erase_member(world.services.deps, TENANT, venue.venue_id, member.member_id)
    # then
    states = {s.store: (s.state.value, s.pending_until) for s in erasure.stores}
    assert erasure.erased_at == erased_at
    assert states == {
        "record": ("erased", None),
        "alerts": ("erased", None),
        "gallery_objects": ("pending", erased_at + timedelta(hours=1, minutes=20)),
        "scanner_memory": ("pending", None),
        "notification_jobs": ("erased", None),
    }
