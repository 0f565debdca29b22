"""The probe guard's record and the Type B permission on DynamoDB (moto in-process).

Two ``Services`` built on the same tables stand for two Lambda containers: what one device sends
through both counts once, in the one record of the device.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from eventface.adapters.dynamo_models import DeviceCredentialItem
from eventface.adapters.dynamo_repositories import DynamoTables
from eventface.adapters.memory import (
    TEST_CURSOR_KEY,
    FixedClock,
    InMemoryFaceAnalyzer,
    InMemoryGallery,
    unit_vector,
)
from eventface.adapters.probe_watch import DynamoProbeWatchStore, ProbeWatchItem
from eventface.bootstrap import Services, bootstrap
from eventface.domain.access import secret_hash
from eventface.domain.cursors import CursorSeal
from eventface.domain.errors import TooManyRequestsError
from eventface.domain.model import Checkpoint, Probe
from eventface.domain.probe_guard import ProbeGuardPolicy, ProbeWatch, observe
from eventface.services.participants import Registration
from eventface.services.scans import Scan
from eventface.settings import Settings

NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
MODEL = "sface-2021dec"
ANN_PHOTO = b"ann"
ANN = unit_vector(1.0, *([0.0] * 127))


@pytest.fixture
def store(table_prefix: str) -> DynamoProbeWatchStore:
    return DynamoProbeWatchStore(DynamoTables(table_prefix))


def _random(rng: random.Random) -> tuple[float, ...]:
    return unit_vector(*(rng.gauss(0.0, 1.0) for _ in range(128)))


def test_dynamo_probe_watch_round_trip_and_conditional_write(store):
    # given
    rng = random.Random(1)
    fresh = store.get("acme", "cam-1")
    seen = observe(fresh, _random(rng), 0.25, NOW, ProbeGuardPolicy()).watch  # 0.25: exact in float32
    # when
    first = store.save(seen)
    stale = store.save(seen)  # another container wrote version 1 meanwhile
    stored = store.get("acme", "cam-1")
    # then
    assert fresh == ProbeWatch("acme", "cam-1") and first and not stale
    assert stored == replace(seen, version=1)


def test_dynamo_probe_watch_expires_unless_flagged(store):
    # given
    quiet = replace(ProbeWatch("acme", "quiet"), updated_at=NOW, faces=3.0)
    flagged = replace(ProbeWatch("acme", "loud"), updated_at=NOW, flags=1, flagged_at=NOW, reason="x")
    # when
    store.save(quiet)
    store.save(flagged)
    # then: an unflagged record goes after two days; a flag stays until an admin clears it
    assert ProbeWatchItem.get("acme#quiet").expires == NOW + timedelta(days=2)
    assert ProbeWatchItem.get("acme#loud").expires is None
    assert set(store.get_many("acme", ["quiet", "loud", "none"])) == {"quiet", "loud"}
    assert store.get_many("other", ["quiet"]) == {}


def _services(table_prefix: str, clock: FixedClock, gallery: InMemoryGallery) -> Services:
    faces = InMemoryFaceAnalyzer(model_id=MODEL, faces={ANN_PHOTO: ANN})
    return bootstrap(
        Settings({"EVENTFACE_TABLE_PREFIX": table_prefix}),
        gallery=gallery,
        faces=faces,
        clock=clock,
        cursors=CursorSeal(TEST_CURSOR_KEY),
    )


def test_dynamo_probe_guard_is_shared_by_containers(table_prefix):
    # given: two containers on the same tables (the gallery and the clock are shared fakes)
    clock, gallery = FixedClock(NOW), InMemoryGallery(model_id=MODEL)
    one, two = _services(table_prefix, clock, gallery), _services(table_prefix, clock, gallery)
    one.create_campaign(
        "acme", "rally", "Rally", NOW - timedelta(hours=1), NOW + timedelta(hours=8),
        checkpoints=(Checkpoint("gate", "Gate"),),
    )  # fmt: skip
    one.publish_campaign("acme", "rally")
    one.register_participant(Registration("acme", "rally", ANN_PHOTO, "Ann", consent=True))
    registration = one.register_device("acme", "rally", "gate", "cam", type_b=True)
    key = one.activate_device(registration.activation_code).key
    rng = random.Random(5)
    answered = 0
    # when: made-up templates at the device's rate limit, alternating between the containers
    for i in range(400):
        svc = (one, two)[i % 2]
        device = svc.authenticate_device(key)
        try:
            svc.record_scan(Scan(device, "gate", template=Probe(_random(rng), MODEL)))
            answered += 1
        except TooManyRequestsError:
            break
        clock.advance(0.5)
    listed = two.list_devices("acme").items
    # then: paused after the same count as in one container; both see the flag
    assert 155 <= answered <= 175
    assert listed[0].probe_status is not None and listed[0].probe_status.flagged
    assert len(one.deps.audit.list("acme", action="devices.probe_abuse").items) == 1


def test_dynamo_type_b_permission_reaches_live_keys_and_rotations(table_prefix):
    # given: an activated camera whose key was rotated (old key in its grace period) and whose
    # earlier rotated-out key's item TTL has already removed
    clock = FixedClock(NOW)
    svc = _services(table_prefix, clock, InMemoryGallery(model_id=MODEL))
    svc.create_campaign("acme", "rally", "Rally", NOW, NOW + timedelta(hours=8),
                        checkpoints=(Checkpoint("gate", "Gate"),))  # fmt: skip
    registration = svc.register_device("acme", "rally", "gate", "cam")
    first = svc.activate_device(registration.activation_code).key
    second = svc.rotate_device_key(svc.authenticate_device(first)).key
    DeviceCredentialItem(secret_hash(first)).delete()  # as TTL would, long after the grace
    third = svc.rotate_device_key(svc.authenticate_device(second)).key
    # when
    allowed = svc.set_type_b("acme", registration.device.device_id, True)
    grace, current = svc.authenticate_device(second), svc.authenticate_device(third)
    fourth = svc.rotate_device_key(current).key
    # then: every live key carries it at once, and a key made later inherits it
    assert allowed.type_b is True and allowed.probe_status is not None
    assert grace.type_b is True and current.type_b is True
    assert svc.authenticate_device(fourth).type_b is True
    assert svc.list_devices("acme").items[0].type_b is True
