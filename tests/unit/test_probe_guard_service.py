"""The probe guard on the scan path (services/probe_guard.py) and the Type B permission, on fakes."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from eventface.adapters.memory import InMemoryGallery, unit_vector
from eventface.adapters.probe_watch import InMemoryProbeWatchStore
from eventface.domain.errors import (
    ForbiddenError,
    NotFoundError,
    StateConflictError,
    TooManyRequestsError,
)
from eventface.domain.model import Identification, Probe
from eventface.domain.probe_guard import ProbeWatch
from eventface.services import devices, probe_guard
from eventface.services.scans import Scan

TENANT = "acme"  # the unit fixtures' tenant
ANN_AXIS = 0


def _face(axis: int) -> tuple[float, ...]:
    return unit_vector(*[1.0 if i == axis else 0.0 for i in range(8)])


def _random(rng: random.Random) -> tuple[float, ...]:
    return unit_vector(*(rng.gauss(0.0, 1.0) for _ in range(8)))


@pytest.fixture
def gate(world: Any, make_campaign: Any, make_participant: Any, make_device: Any) -> Any:
    """A live campaign with Ann (axis 0) and a Type B camera at the gate: its credential."""
    make_campaign()
    make_participant(axis=ANN_AXIS)
    _, key = make_device("gate", type_b=True)
    return world.services.authenticate_device(key)


def _template(world: Any, device: Any, vector: tuple[float, ...]) -> Any:
    return world.services.record_scan(Scan(device, "gate", template=Probe(vector, world.faces.model_id)))


class CountingGallery(InMemoryGallery):
    """The in-memory gallery, counting its searches."""

    def __init__(self, gallery: InMemoryGallery) -> None:
        super().__init__(gallery.model_id, gallery.threshold)
        self.templates = gallery.templates
        self.searches = 0

    def identify(self, gallery_id: str, probe: Probe, fmr_per_scan: float) -> Identification:
        self.searches += 1
        return super().identify(gallery_id, probe, fmr_per_scan)


def test_probe_guard_photo_scan_reads_and_writes_no_record(world, gate, make_device, make_participant):
    # given: a photo camera (Type A)
    _, photo = make_participant(axis=3, nickname="Bo")
    _, key = make_device("gate")
    camera = world.services.authenticate_device(key)
    # when
    world.services.record_scan(Scan(camera, "gate", photo=photo))
    world.services.record_scan(Scan(camera, "gate", photo=b"nobody"))
    # then
    assert world.probe_watch.records == {}


def test_probe_guard_matched_template_costs_nothing_unmatched_one_is_recorded(world, gate):
    # when
    matched = _template(world, gate, _face(ANN_AXIS))
    unmatched = _template(world, gate, _face(5))
    # then
    assert matched.recognised and not unmatched.recognised
    watch = world.probe_watch.records[(TENANT, gate.device_id)]
    assert watch.version == 1 and len(watch.chains) == 1 and watch.faces == 1


def test_probe_guard_paused_device_is_refused_before_any_search(world, gate):
    # given: the device is paused
    counting = CountingGallery(world.gallery)
    world.services.deps._built["gallery"] = counting
    paused = replace(
        ProbeWatch(TENANT, gate.device_id),
        throttled_until=world.clock.now() + world.services.deps.policy.probe_guard.min_pause,
        flags=1,
    )
    assert world.probe_watch.save(paused)
    # when / then
    with pytest.raises(TooManyRequestsError, match="photos are still accepted") as refused:
        _template(world, gate, _face(ANN_AXIS))
    assert refused.value.retry_after == 60 and counting.searches == 0


def test_probe_guard_blocked_device_gets_403_naming_the_way_out(world, gate):
    # given
    blocked = replace(ProbeWatch(TENANT, gate.device_id), quarantined_at=world.clock.now(), flags=3)
    assert world.probe_watch.save(blocked)
    # when / then
    with pytest.raises(ForbiddenError, match=f"DELETE /v1/devices/{gate.device_id}/probe-abuse"):
        _template(world, gate, _face(ANN_AXIS))


def test_probe_guard_trip_is_audited_once_and_withholds_that_answer(world, gate):
    # given
    rng = random.Random(3)
    outcomes = []
    # when: made-up templates at the device's rate limit until refused, and a few more
    for _ in range(220):
        try:
            outcomes.append(_template(world, gate, _random(rng)).recognised)
        except TooManyRequestsError:
            outcomes.append("paused")
        world.clock.advance(0.5)
    # then
    trips = world.audit.list(TENANT, action="devices.probe_abuse").items
    assert len(trips) == 1 and trips[0].actor == f"device:{gate.device_id}"
    assert trips[0].outcome.value == "denied" and "unmatched templates" in trips[0].detail
    first = outcomes.index("paused")
    assert set(outcomes[first:]) == {"paused"} and set(outcomes[:first]) == {False}
    history = world.services.list_history(TENANT, "rally", limit=100).items
    assert len([e for e in history if e.outcome.value == "unknown"]) <= first


class ContendedStore(InMemoryProbeWatchStore):
    """A store whose first ``losses`` writes find that another container wrote first."""

    def __init__(self, losses: int) -> None:
        super().__init__()
        self.losses = losses

    def save(self, watch: ProbeWatch) -> bool:
        if self.losses > 0:
            self.losses -= 1
            other = self.get(watch.tenant_id, watch.device_id)  # the other container's write
            super().save(replace(other, faces=other.faces + 1))
            return False
        return super().save(watch)


@pytest.mark.parametrize(("losses", "answered"), [(2, True), (10, False)])
def test_probe_guard_concurrent_writes_are_retried_then_refused(world, gate, losses, answered):
    # given
    store = ContendedStore(losses)
    world.services.deps._built["probe_watch"] = store
    # when
    if answered:
        result = _template(world, gate, _face(5))
        # then: both writes count
        assert result.recognised is False
        assert store.records[(TENANT, gate.device_id)].faces == losses + 1
    else:
        with pytest.raises(TooManyRequestsError, match="one after the other"):
            _template(world, gate, _face(5))


def test_type_b_permission_reaches_the_key_the_device_holds_and_its_rotations(
    world, make_campaign, make_device
):
    # given: a photo camera with a key
    make_campaign()
    device, key = make_device("gate")
    before = world.services.authenticate_device(key)
    # when
    changed = devices.set_type_b(world.services.deps, TENANT, device.device_id, True)
    after = world.services.authenticate_device(key)
    rotated = world.services.rotate_device_key(after)
    new = world.services.authenticate_device(rotated.key)
    devices.set_type_b(world.services.deps, TENANT, device.device_id, False)
    stopped = world.services.authenticate_device(rotated.key)
    # then
    assert before.type_b is False and changed.type_b is True
    assert after.type_b is True and new.type_b is True and rotated.device.type_b is True
    assert stopped.type_b is False


def test_type_b_permission_set_before_activation_reaches_the_key(world, make_campaign):
    # given: a camera registered without Type B, allowed it before it activates
    make_campaign()
    registration = world.services.register_device(TENANT, "rally", "gate", "cam")
    devices.set_type_b(world.services.deps, TENANT, registration.device.device_id, True)
    # when
    key = world.services.activate_device(registration.activation_code).key
    # then
    assert world.services.authenticate_device(key).type_b is True


def test_type_b_permission_of_unknown_foreign_or_revoked_devices_is_refused(
    world, make_campaign, make_device
):
    # given
    make_campaign()
    device, _ = make_device("gate")
    world.services.revoke_device(TENANT, device.device_id)
    # when / then
    with pytest.raises(NotFoundError):
        devices.set_type_b(world.services.deps, "other", device.device_id, True)
    with pytest.raises(StateConflictError, match="revoked"):
        devices.set_type_b(world.services.deps, TENANT, device.device_id, True)


def test_probe_guard_clear_lifts_the_block_and_is_tenant_scoped(world, gate):
    # given
    blocked = replace(ProbeWatch(TENANT, gate.device_id), quarantined_at=world.clock.now(), flags=3)
    assert world.probe_watch.save(blocked)
    # when
    device = probe_guard.clear(world.services.deps, TENANT, gate.device_id)
    answer = _template(world, gate, _face(ANN_AXIS))
    # then
    assert device.probe_status is not None and not device.probe_status.flagged
    assert answer.recognised
    with pytest.raises(NotFoundError):
        probe_guard.clear(world.services.deps, "other", gate.device_id)
