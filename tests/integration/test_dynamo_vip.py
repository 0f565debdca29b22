"""The ports of VIP detection and campaign messages: one contract, two implementations.

Every contract test runs against the DynamoDB adapters (moto in-process, fresh tables per test)
and against the in-memory fakes the unit tests use, so the fakes cannot drift from the real
thing. A few tests at the end are DynamoDB only: what the outbox items hold, throttled batches,
and errors of the service.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eventface import aws
from eventface.adapters import dynamo_repositories
from eventface.adapters.dynamo_access import DynamoAuditLog
from eventface.adapters.dynamo_repositories import DynamoTables
from eventface.adapters.dynamo_vip import (
    DynamoAlertStore,
    DynamoMessageStore,
    DynamoStaffDeviceRepository,
    DynamoVenueRepository,
    DynamoVipMemberRepository,
)
from eventface.adapters.memory_access import InMemoryAuditLog
from eventface.adapters.memory_vip import (
    InMemoryAlertStore,
    InMemoryMessageStore,
    InMemoryStaffDeviceRepository,
    InMemoryVenueRepository,
    InMemoryVipMemberRepository,
)
from eventface.adapters.sqs_queue import alert_job_from_json, job_from_json
from eventface.domain.access import AuditEntry, AuditOutcome
from eventface.domain.errors import (
    AlreadyExistsError,
    DependencyError,
    InvalidInputError,
    NotFoundError,
    StateConflictError,
)
from eventface.domain.model import JobKind, NotificationJob
from eventface.domain.vip import (
    AlertJob,
    CampaignMessage,
    CrmConfig,
    CrmKind,
    ProfileStatus,
    Segment,
    SightingWrite,
    StaffDevice,
    StaffPlatform,
    Venue,
    VipAlert,
    VipMember,
)
from eventface.ports_vip import (
    AlertStore,
    MessageStore,
    StaffDeviceRepository,
    VenueRepository,
    VipMemberRepository,
)

NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=30)


@dataclass
class World:
    """The five stores of one implementation, and what they put in the outbox and audit log."""

    venues: VenueRepository
    members: VipMemberRepository
    staff: StaffDeviceRepository
    alerts: AlertStore
    messages: MessageStore
    alert_jobs: Callable[[], list[AlertJob]]
    message_jobs: Callable[[], list[NotificationJob]]
    audit: Callable[[], list[AuditEntry]]
    tables: DynamoTables | None = None


def _outbox(prefix: str) -> list[dict[str, str]]:
    """Every item of the outbox table, read with boto3 (string attributes only)."""
    pages = aws.client("dynamodb").get_paginator("scan").paginate(TableName=f"{prefix}-outbox")
    return [{k: v["S"] for k, v in item.items() if "S" in v} for page in pages for item in page["Items"]]


def _dynamo_world(prefix: str) -> World:
    tables = DynamoTables(prefix)
    audit = DynamoAuditLog(tables)
    return World(
        venues=DynamoVenueRepository(tables),
        members=DynamoVipMemberRepository(tables),
        staff=DynamoStaffDeviceRepository(tables),
        alerts=DynamoAlertStore(tables),
        messages=DynamoMessageStore(tables),
        alert_jobs=lambda: [
            alert_job_from_json(i["body"]) for i in _outbox(prefix) if i["queue"] == "sightings"
        ],
        message_jobs=lambda: [
            job_from_json(i["body"]) for i in _outbox(prefix) if i["queue"] == "notifications"
        ],
        audit=lambda: list(audit.list("acme", limit=1000).items),
        tables=tables,
    )


def _memory_world() -> World:
    audit = InMemoryAuditLog()
    alerts = InMemoryAlertStore(audit=audit)
    messages = InMemoryMessageStore()
    return World(
        venues=InMemoryVenueRepository(),
        members=InMemoryVipMemberRepository(),
        staff=InMemoryStaffDeviceRepository(),
        alerts=alerts,
        messages=messages,
        alert_jobs=lambda: list(alerts.jobs),
        message_jobs=lambda: list(messages.jobs),
        audit=lambda: list(audit.list("acme", limit=1000).items),
    )


@pytest.fixture(params=["dynamo", "memory"])
def world(request: pytest.FixtureRequest) -> World:
    """The stores of one implementation: DynamoDB on fresh moto tables, or the in-memory fakes."""
    if request.param == "dynamo":
        return _dynamo_world(request.getfixturevalue("table_prefix"))
    return _memory_world()


@pytest.fixture
def dynamo(table_prefix: str) -> World:
    """The DynamoDB stores only (for what the fakes do not model)."""
    return _dynamo_world(table_prefix)


# ------------------------------------------------------------------------------------- factories


def _venue(venue_id: str = "lobby", **changes: Any) -> Venue:
    crm = CrmConfig(
        kind=CrmKind.REST,
        url="https://crm.example/api/customers/{customer_id}",
        field_map={"name": "profile.fullName", "tier": "loyalty.tier"},
        secret_id="crm/acme",
        deadline_ms=900,
    )
    return replace(Venue("acme", venue_id, "Grand Hotel", NOW, dedupe_minutes=30, crm=crm), **changes)


def _member(member_id: str = "m1", **changes: Any) -> VipMember:
    member = VipMember(
        "acme", "lobby", member_id, "Ms Tanaka", NOW, tier="gold", crm_customer_id="C-1", notes="tea"
    )
    return replace(member, **changes)


def _alert(at: datetime = NOW, member_id: str = "m1", **changes: Any) -> VipAlert:
    alert = VipAlert(
        tenant_id="acme",
        venue_id="lobby",
        alert_id=uuid.uuid4().hex,
        member_id=member_id,
        name="Ms Tanaka",
        sighted_at=at,
        device_id="cam-1",
        similarity=0.73,
        tier="gold",
        crm_customer_id="C-1",
        expires_at=at + timedelta(days=90),
    )
    return replace(alert, **changes)


def _audit_entry(at: datetime) -> AuditEntry:
    return AuditEntry(
        "acme", uuid.uuid4().hex, at, "device:cam-1", "sighting", "/v1/venues/lobby/sightings",
        AuditOutcome.OK, "1 face(s) searched", at + timedelta(days=400),
    )  # fmt: skip


def _sighting(
    at: datetime = NOW, *, window: timedelta = WINDOW, member_id: str = "m1", audit: bool = True
) -> SightingWrite:
    return SightingWrite(
        alert=_alert(at, member_id),
        dedupe_key=f"vip#acme#lobby#{member_id}",
        dedupe_until=at + window,
        audit=_audit_entry(at) if audit else None,
    )


def _message(message_id: str = "msg-1", at: datetime = NOW, **changes: Any) -> CampaignMessage:
    message = CampaignMessage(
        tenant_id="acme",
        campaign_id="rally",
        message_id=message_id,
        title={"ja": "お知らせ", "en": "News"},
        body={"ja": "本日限定", "en": "Today only"},
        segment=Segment(min_stamps=2, completed=False),
        created_at=at,
        created_by="user:alice",
        targeted=60,
    )
    return replace(message, **changes)


def _job(message: CampaignMessage, i: int) -> NotificationJob:
    return NotificationJob(
        job_id=f"{message.message_id}-p{i}",
        kind=JobKind.MESSAGE,
        tenant_id="acme",
        campaign_id="rally",
        participant_id=f"p{i}",
        checkpoint_id="",
        stamps=2,
        required=3,
        created_at=message.created_at,
        message_id=message.message_id,
    )


def _jobs(message: CampaignMessage, count: int) -> list[NotificationJob]:
    return [_job(message, i) for i in range(count)]


# ---------------------------------------------------------------------------------------- venues


def test_venue_round_trip_and_optimistic_lock(world: World) -> None:
    # given
    created = world.venues.add(_venue())
    # when
    loaded = world.venues.get("acme", "lobby")
    saved = world.venues.save(replace(loaded, name="Grand Hotel Annex", dedupe_minutes=0))
    # then
    assert created == loaded == _venue(version=1)
    assert saved.version == 2 and world.venues.get("acme", "lobby") == saved
    assert world.venues.get("acme", "lobby").crm.field_map == {
        "name": "profile.fullName",
        "tier": "loyalty.tier",
    }
    with pytest.raises(StateConflictError, match="changed meanwhile"):
        world.venues.save(replace(loaded, name="Stale"))
    assert world.venues.get("acme", "lobby").name == "Grand Hotel Annex"


def test_venue_add_twice_is_already_exists_and_unknown_is_not_found(world: World) -> None:
    # given
    world.venues.add(_venue())
    # when / then
    with pytest.raises(AlreadyExistsError, match="choose another id"):
        world.venues.add(_venue(name="Other"))
    with pytest.raises(NotFoundError):
        world.venues.get("acme", "nope")
    with pytest.raises(NotFoundError):
        world.venues.get("other-tenant", "lobby")
    with pytest.raises(NotFoundError, match="create it first"):
        world.venues.save(_venue("nope", version=1))


def test_venue_without_crm_round_trips(world: World) -> None:
    # given
    venue = _venue(crm=CrmConfig())
    # when
    world.venues.add(venue)
    # then
    assert world.venues.get("acme", "lobby") == replace(venue, version=1)


def test_venue_list_pages_by_id_within_the_tenant(world: World) -> None:
    # given
    for venue_id in ("v2", "v0", "v1"):
        world.venues.add(_venue(venue_id))
    world.venues.add(_venue("v9", tenant_id="other"))
    # when
    first = world.venues.list("acme", limit=2)
    second = world.venues.list("acme", limit=2, cursor=first.cursor)
    # then
    assert [v.venue_id for v in first.items + second.items] == ["v0", "v1", "v2"]
    assert first.cursor is not None and second.cursor is None


def test_a_cursor_not_made_by_the_store_is_invalid_input(world: World) -> None:
    # when / then
    with pytest.raises(InvalidInputError, match="cursor"):
        world.venues.list("acme", cursor="not-a-cursor!")


# ------------------------------------------------------------------------------------ VIP members


def test_member_crud(world: World) -> None:
    # given
    world.members.add(_member())
    # when / then
    assert world.members.get("acme", "lobby", "m1") == _member()
    assert world.members.find("acme", "lobby", "nope") is None
    assert world.members.find("acme", "other-venue", "m1") is None
    with pytest.raises(AlreadyExistsError):
        world.members.add(_member(name="Twin"))
    assert world.members.delete("acme", "lobby", "m1") is True
    assert world.members.delete("acme", "lobby", "m1") is False
    with pytest.raises(NotFoundError, match="not a VIP"):
        world.members.get("acme", "lobby", "m1")


def test_member_find_many_returns_only_the_existing_ones(world: World) -> None:
    # given
    for member_id in ("m1", "m2", "m3"):
        world.members.add(_member(member_id))
    # when
    found = world.members.find_many("acme", "lobby", ["m3", "nope", "m1", "m3"])
    # then
    assert found == {"m1": _member("m1"), "m3": _member("m3")}
    assert world.members.find_many("acme", "lobby", []) == {}


def test_member_find_many_beyond_one_batch_of_100(world: World) -> None:
    # given: 3 members among 150 ids (two BatchGetItem requests)
    for member_id in ("m001", "m099", "m149"):
        world.members.add(_member(member_id))
    # when
    found = world.members.find_many("acme", "lobby", [f"m{i:03d}" for i in range(150)])
    # then
    assert sorted(found) == ["m001", "m099", "m149"]


def test_member_list_pages_by_id_within_the_venue(world: World) -> None:
    # given
    for member_id in ("m2", "m0", "m1"):
        world.members.add(_member(member_id))
    world.members.add(_member("m9", venue_id="spa"))
    # when
    first = world.members.list("acme", "lobby", limit=2)
    second = world.members.list("acme", "lobby", limit=2, cursor=first.cursor)
    # then
    assert [m.member_id for m in first.items + second.items] == ["m0", "m1", "m2"]
    assert second.cursor is None


# ---------------------------------------------------------------------------------- staff devices


def _staff(staff_device_id: str, **changes: Any) -> StaffDevice:
    device = StaffDevice(
        "acme", "lobby", staff_device_id, "Front desk", StaffPlatform.FCM, NOW, token=f"tok-{staff_device_id}"
    )
    return replace(device, **changes)


def test_staff_devices_subscribe_list_disable_unsubscribe(world: World) -> None:
    # given
    world.staff.add(_staff("s2"))
    world.staff.add(_staff("s1", platform=StaffPlatform.INBOX, token="", locale="en"))
    world.staff.add(_staff("s3", venue_id="spa"))
    # when
    world.staff.disable("acme", "lobby", "s2", NOW)
    world.staff.disable("acme", "lobby", "s2", NOW + timedelta(hours=1))  # the first time stays
    world.staff.disable("acme", "lobby", "gone", NOW)  # no-op
    # then
    assert world.staff.list("acme", "lobby") == (
        _staff("s1", platform=StaffPlatform.INBOX, token="", locale="en"),
        _staff("s2", disabled_at=NOW),
    )
    with pytest.raises(AlreadyExistsError, match="subscribed already"):
        world.staff.add(_staff("s1"))
    assert world.staff.delete("acme", "lobby", "s1") is True
    assert world.staff.delete("acme", "lobby", "s1") is False
    assert [d.staff_device_id for d in world.staff.list("acme", "lobby")] == ["s2"]


# ---------------------------------------------------------------------------------------- alerts


def test_claim_writes_the_alert_its_job_and_the_audit_entry(world: World) -> None:
    # given
    write = _sighting()
    # when
    claimed = world.alerts.claim(write)
    # then
    assert claimed is True
    assert world.alerts.get("acme", "lobby", write.alert.alert_id) == write.alert
    assert world.alert_jobs() == [AlertJob("acme", "lobby", write.alert.alert_id, NOW)]
    assert world.audit() == [write.audit]


def test_erasing_a_member_deletes_their_alerts_and_lock_only(world: World) -> None:
    # given: two alerts of m1 (a window apart) and one of m2
    assert world.alerts.claim(_sighting())
    assert world.alerts.claim(_sighting(NOW + WINDOW))
    other = _sighting(member_id="m2")
    assert world.alerts.claim(other)
    # when
    deleted = world.alerts.delete_member("acme", "lobby", "m1")
    # then: m2's alert stays; m1 is alerted again at once (the lock went with the alerts)
    assert deleted == 2
    assert [a.alert_id for a in world.alerts.list("acme", "lobby").items] == [other.alert.alert_id]
    assert world.alerts.claim(_sighting(NOW + WINDOW + timedelta(seconds=1)))
    assert world.alerts.delete_member("acme", "lobby", "nobody") == 0


def test_a_second_claim_inside_the_window_writes_nothing(world: World) -> None:
    # given
    assert world.alerts.claim(_sighting())
    repeat = _sighting(NOW + WINDOW - timedelta(seconds=1))
    # when
    claimed = world.alerts.claim(repeat)
    # then
    assert claimed is False
    with pytest.raises(NotFoundError):
        world.alerts.get("acme", "lobby", repeat.alert.alert_id)
    assert len(world.alerts.list("acme", "lobby").items) == 1
    assert len(world.alert_jobs()) == 1
    assert len(world.audit()) == 1


def test_another_member_inside_the_window_is_claimed(world: World) -> None:
    # given
    assert world.alerts.claim(_sighting())
    # when
    claimed = world.alerts.claim(_sighting(NOW + timedelta(seconds=5), member_id="m2"))
    # then
    assert claimed is True and len(world.alert_jobs()) == 2


def test_a_claim_when_the_window_has_passed_is_a_new_alert(world: World) -> None:
    # given
    first = _sighting()
    assert world.alerts.claim(first)
    later = _sighting(NOW + WINDOW)
    # when
    claimed = world.alerts.claim(later)
    # then
    assert claimed is True
    assert [a.alert_id for a in world.alerts.list("acme", "lobby").items] == [
        later.alert.alert_id,
        first.alert.alert_id,
    ]
    assert len(world.alert_jobs()) == 2 and len(world.audit()) == 2
    # and the new window holds
    assert world.alerts.claim(_sighting(NOW + WINDOW + timedelta(minutes=1))) is False


def test_with_no_dedupe_window_every_claim_is_an_alert(world: World) -> None:
    # given: dedupe_minutes 0, three frames (two at the same instant)
    writes = [
        _sighting(at, window=timedelta(0), audit=False) for at in (NOW, NOW, NOW + timedelta(seconds=1))
    ]
    # when
    claimed = [world.alerts.claim(w) for w in writes]
    # then
    assert claimed == [True, True, True]
    assert len(world.alerts.list("acme", "lobby").items) == 3 and len(world.alert_jobs()) == 3


def test_eight_simultaneous_claims_of_one_member_make_one_alert(world: World) -> None:
    # given: a store in use (another guest's alert), then the same guest in 8 frames at once
    earlier = _sighting(NOW - timedelta(minutes=1), member_id="m0", audit=False)
    assert world.alerts.claim(earlier)
    writes = [_sighting(NOW + timedelta(seconds=i)) for i in range(8)]
    barrier = threading.Barrier(len(writes))

    def claim(write: SightingWrite) -> bool:
        barrier.wait()
        return world.alerts.claim(write)

    # when
    with ThreadPoolExecutor(len(writes)) as pool:
        results = list(pool.map(claim, writes))
    # then
    assert results.count(True) == 1
    winner = writes[results.index(True)]
    assert world.alerts.list("acme", "lobby").items == (winner.alert, earlier.alert)
    assert sorted(j.alert_id for j in world.alert_jobs()) == sorted(
        (winner.alert.alert_id, earlier.alert.alert_id)
    )
    assert world.audit() == [winner.audit]


def test_alerts_list_newest_first_in_pages_and_since(world: World) -> None:
    # given: five members sighted a minute apart, and an alert at another venue
    writes = [_sighting(NOW + timedelta(minutes=i), member_id=f"m{i}") for i in range(5)]
    for write in writes:
        assert world.alerts.claim(write)
    other = _sighting(NOW + timedelta(minutes=9))
    assert world.alerts.claim(replace(other, alert=replace(other.alert, venue_id="spa"), dedupe_key="spa"))
    # when
    first = world.alerts.list("acme", "lobby", limit=2)
    second = world.alerts.list("acme", "lobby", limit=2, cursor=first.cursor)
    third = world.alerts.list("acme", "lobby", limit=2, cursor=second.cursor)
    recent = world.alerts.list("acme", "lobby", since=NOW + timedelta(minutes=3))
    # then
    listed = [a.member_id for a in first.items + second.items + third.items]
    assert listed == ["m4", "m3", "m2", "m1", "m0"] and third.cursor is None
    assert [a.member_id for a in recent.items] == ["m4", "m3"]  # since is inclusive
    assert first.items[0] == writes[4].alert


def test_enrich_and_pushed_store_the_outcome(world: World) -> None:
    # given
    write = _sighting()
    assert world.alerts.claim(write)
    alert_id = write.alert.alert_id
    # when
    enriched = world.alerts.enrich(
        "acme", "lobby", alert_id, status=ProfileStatus.OK, profile={"name": "Tanaka Yui", "tier": "gold"},
        reason="", at=NOW + timedelta(seconds=1),
    )  # fmt: skip
    pushed = world.alerts.pushed(
        "acme", "lobby", alert_id, delivered=3, failed=1, at=NOW + timedelta(seconds=2)
    )
    # then
    expected = replace(
        write.alert,
        profile_status=ProfileStatus.OK,
        profile={"name": "Tanaka Yui", "tier": "gold"},
        enriched_at=NOW + timedelta(seconds=1),
    )
    assert enriched == expected
    assert pushed == replace(expected, pushed_at=NOW + timedelta(seconds=2), delivered=3, failed=1)
    assert world.alerts.get("acme", "lobby", alert_id) == pushed


def test_enrich_without_a_profile_clears_it(world: World) -> None:
    # given: an alert enriched once with a profile
    write = _sighting()
    assert world.alerts.claim(write)
    alert_id = write.alert.alert_id
    world.alerts.enrich(
        "acme", "lobby", alert_id, status=ProfileStatus.OK, profile={"name": "Yui"}, reason="", at=NOW
    )
    # when
    again = world.alerts.enrich(
        "acme", "lobby", alert_id, status=ProfileStatus.UNAVAILABLE, profile=None, reason="CRM timed out",
        at=NOW + timedelta(seconds=1),
    )  # fmt: skip
    # then
    assert (again.profile_status, again.profile, again.profile_reason) == (
        ProfileStatus.UNAVAILABLE,
        None,
        "CRM timed out",
    )
    assert world.alerts.get("acme", "lobby", alert_id) == again


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.enrich(
            "acme", "lobby", "nope", status=ProfileStatus.NONE, profile=None, reason="", at=NOW
        ),
        lambda s: s.pushed("acme", "lobby", "nope", delivered=1, failed=0, at=NOW),
        lambda s: s.acknowledge("acme", "lobby", "nope", by="user:bob", at=NOW),
        lambda s: s.flag_false_match("acme", "lobby", "nope", by="user:bob", at=NOW),
        lambda s: s.get("acme", "lobby", "nope"),
    ],
    ids=["enrich", "pushed", "acknowledge", "flag", "get"],
)
def test_an_unknown_alert_is_not_found(world: World, change: Callable[[AlertStore], Any]) -> None:
    # when / then
    with pytest.raises(NotFoundError, match="alert nope does not exist"):
        change(world.alerts)
    assert world.alerts.list("acme", "lobby").items == ()  # nothing was created on the way


def test_the_first_acknowledgement_wins(world: World) -> None:
    # given
    write = _sighting()
    assert world.alerts.claim(write)
    alert_id = write.alert.alert_id
    # when
    first = world.alerts.acknowledge(
        "acme", "lobby", alert_id, by="user:alice", at=NOW + timedelta(seconds=5)
    )
    repeat = world.alerts.acknowledge("acme", "lobby", alert_id, by="user:bob", at=NOW + timedelta(seconds=6))
    # then
    assert first == replace(
        write.alert, acknowledged_by="user:alice", acknowledged_at=NOW + timedelta(seconds=5)
    )
    assert repeat == first == world.alerts.get("acme", "lobby", alert_id)


def test_the_first_false_match_flag_wins(world: World) -> None:
    # given
    write = _sighting()
    assert world.alerts.claim(write)
    alert_id = write.alert.alert_id
    # when
    first = world.alerts.flag_false_match(
        "acme", "lobby", alert_id, by="user:alice", at=NOW + timedelta(seconds=5), note="not her"
    )
    repeat = world.alerts.flag_false_match(
        "acme", "lobby", alert_id, by="user:bob", at=NOW + timedelta(seconds=6)
    )
    # then
    assert first == replace(
        write.alert,
        false_match_by="user:alice",
        false_match_at=NOW + timedelta(seconds=5),
        false_match_note="not her",
    )
    assert repeat == first == world.alerts.get("acme", "lobby", alert_id)
    assert first.acknowledged_by is None  # flags and acknowledgements are independent


# -------------------------------------------------------------------------------------- messages


def test_message_add_stores_it_and_puts_every_job_in_the_outbox(world: World) -> None:
    # given: 60 jobs, more than two BatchWriteItem requests
    message = _message()
    jobs = _jobs(message, 60)
    # when
    world.messages.add(message, jobs)
    # then
    assert world.messages.get("acme", "rally", "msg-1") == message
    assert sorted(world.message_jobs(), key=lambda j: j.job_id) == sorted(jobs, key=lambda j: j.job_id)


def test_message_add_twice_is_already_exists_and_queues_nothing_more(world: World) -> None:
    # given
    message = _message()
    world.messages.add(message, _jobs(message, 2))
    # when / then
    with pytest.raises(AlreadyExistsError, match="exists already"):
        world.messages.add(
            replace(message, created_by="user:mallory"), _jobs(replace(message, message_id="x"), 3)
        )
    assert len(world.message_jobs()) == 2
    assert world.messages.get("acme", "rally", "msg-1").created_by == "user:alice"


def test_message_without_jobs_or_segment_conditions(world: World) -> None:
    # given
    message = _message(segment=Segment(), title={}, body={"en": "Hi"}, targeted=0)
    # when
    world.messages.add(message, [])
    # then
    assert world.messages.get("acme", "rally", "msg-1") == message
    assert world.message_jobs() == []


def test_messages_list_newest_first_in_pages(world: World) -> None:
    # given
    for i, message_id in enumerate(("b", "c", "a")):
        world.messages.add(_message(message_id, NOW + timedelta(minutes=i)), [])
    world.messages.add(_message("z", campaign_id="other"), [])
    # when
    first = world.messages.list("acme", "rally", limit=2)
    second = world.messages.list("acme", "rally", limit=2, cursor=first.cursor)
    # then
    assert [m.message_id for m in first.items + second.items] == ["a", "c", "b"]
    assert second.cursor is None


def test_message_counts_add_up_under_concurrency(world: World) -> None:
    # given
    world.messages.add(_message(), [])
    outcomes = ["delivered"] * 10 + ["failed"] * 2 + ["no_endpoint"]
    barrier = threading.Barrier(len(outcomes))

    def count(outcome: str) -> None:
        barrier.wait()
        world.messages.count("acme", "rally", "msg-1", outcome)

    # when
    with ThreadPoolExecutor(len(outcomes)) as pool:
        list(pool.map(count, outcomes))
    # then
    stored = world.messages.get("acme", "rally", "msg-1")
    assert (stored.targeted, stored.delivered, stored.failed, stored.no_endpoint) == (60, 10, 2, 1)


def test_message_count_of_an_unknown_outcome_or_message_is_refused(world: World) -> None:
    # given
    world.messages.add(_message(), [])
    # when / then
    with pytest.raises(ValueError, match="unknown outcome 'opened'"):
        world.messages.count("acme", "rally", "msg-1", "opened")
    with pytest.raises(NotFoundError, match="message nope does not exist"):
        world.messages.count("acme", "rally", "nope", "delivered")
    with pytest.raises(NotFoundError):
        world.messages.get("acme", "rally", "nope")
    assert [m.message_id for m in world.messages.list("acme", "rally").items] == ["msg-1"]


# ---------------------------------------------------------------------------- DynamoDB specifics


def test_dynamo_outbox_item_of_an_alert_is_a_sightings_message(dynamo: World, table_prefix: str) -> None:
    # given
    write = _sighting()
    # when
    assert dynamo.alerts.claim(write)
    # then
    (item,) = _outbox(table_prefix)
    assert item["message_id"] == write.alert.alert_id
    assert (item["queue"], item["kind"], item["group_id"]) == ("sightings", "vip_alert", "acme#lobby")
    assert alert_job_from_json(item["body"]) == AlertJob("acme", "lobby", write.alert.alert_id, NOW)


def test_dynamo_outbox_items_of_a_message_are_notifications(dynamo: World, table_prefix: str) -> None:
    # given
    message = _message()
    # when
    dynamo.messages.add(message, _jobs(message, 2))
    # then
    items = sorted(_outbox(table_prefix), key=lambda i: i["message_id"])
    assert [(i["message_id"], i["queue"], i["kind"]) for i in items] == [
        ("msg-1-p0", "notifications", "message"),
        ("msg-1-p1", "notifications", "message"),
    ]
    assert items[0]["group_id"] == "acme#rally#p0"


def test_dynamo_with_no_window_a_lock_of_an_earlier_window_does_not_apply(dynamo: World) -> None:
    # given: an alert under a 30-minute window, then the venue set to dedupe_minutes 0
    assert dynamo.alerts.claim(_sighting())
    # when
    claimed = dynamo.alerts.claim(_sighting(NOW + timedelta(minutes=1), window=timedelta(0)))
    # then: the venue's current setting rules (the in-memory fake still honours the old lock)
    assert claimed is True and len(dynamo.alert_jobs()) == 2


class _Throttled:
    """A DynamoDB client that leaves the second half of the first batch request unprocessed."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.calls: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def batch_write_item(self, **kwargs: Any) -> dict[str, Any]:
        ((table, requests),) = kwargs["RequestItems"].items()
        self.calls.append(len(requests))
        if len(self.calls) > 1:
            return dict(self._real.batch_write_item(**kwargs))
        half = len(requests) // 2
        self._real.batch_write_item(RequestItems={table: requests[:half]})
        return {"UnprocessedItems": {table: requests[half:]}}

    def batch_get_item(self, **kwargs: Any) -> dict[str, Any]:
        ((table, request),) = kwargs["RequestItems"].items()
        self.calls.append(len(request["Keys"]))
        if len(self.calls) > 1:
            return dict(self._real.batch_get_item(**kwargs))
        half = len(request["Keys"]) // 2
        answer = self._real.batch_get_item(RequestItems={table: {**request, "Keys": request["Keys"][:half]}})
        return {**answer, "UnprocessedKeys": {table: {**request, "Keys": request["Keys"][half:]}}}


@pytest.fixture
def throttled(dynamo: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[_Throttled, list[int]]]:
    """The adapters' client, throttled once; the backoff attempts are recorded, not slept."""
    assert dynamo.tables is not None
    client = _Throttled(dynamo.tables.connection.client)
    connection = type("Connection", (), {"client": client})()
    monkeypatch.setattr(DynamoTables, "connection", property(lambda _: connection))
    backoffs: list[int] = []
    monkeypatch.setattr(dynamo_repositories, "_backoff", backoffs.append)
    yield client, backoffs


def test_dynamo_message_jobs_left_unprocessed_are_resent(
    dynamo: World, throttled: tuple[_Throttled, list[int]], table_prefix: str
) -> None:
    # given
    client, backoffs = throttled
    message = _message()
    # when: the first of three requests (25, 25, 10) is half throttled
    dynamo.messages.add(message, _jobs(message, 60))
    # then
    assert client.calls == [25, 13, 25, 10] and backoffs == [0]
    assert len(_outbox(table_prefix)) == 60


def test_dynamo_members_left_unprocessed_are_read_again(
    dynamo: World, throttled: tuple[_Throttled, list[int]]
) -> None:
    # given
    client, backoffs = throttled
    for member_id in ("m1", "m2", "m3", "m4"):
        dynamo.members.add(_member(member_id))
    # when
    found = dynamo.members.find_many("acme", "lobby", ["m1", "m2", "m3", "m4"])
    # then
    assert sorted(found) == ["m1", "m2", "m3", "m4"]
    assert client.calls == [4, 2] and backoffs == [0]


def test_dynamo_message_jobs_always_throttled_is_a_dependency_error(
    dynamo: World, throttled: tuple[_Throttled, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: every batch request leaves one item unprocessed
    client, backoffs = throttled

    def stuck(**kwargs: Any) -> dict[str, Any]:
        ((table, requests),) = kwargs["RequestItems"].items()
        return {"UnprocessedItems": {table: requests[-1:]}}

    monkeypatch.setattr(client, "batch_write_item", stuck)
    message = _message()
    # when / then
    with pytest.raises(
        DependencyError,
        match=r"jobs of message msg-1 \(the message itself is stored\) was throttled .* retry later",
    ):
        dynamo.messages.add(message, _jobs(message, 3))
    assert backoffs == [0, 1, 2, 3, 4]  # six requests, then it gives up


@pytest.mark.parametrize(
    "call",
    [
        lambda w: w.venues.get("acme", "lobby"),
        lambda w: w.members.find_many("acme", "lobby", ["m1"]),
        lambda w: w.alerts.claim(_sighting()),
        lambda w: w.alerts.list("acme", "lobby"),
        lambda w: w.messages.count("acme", "rally", "msg-1", "failed"),
        lambda w: w.staff.disable("acme", "lobby", "s1", NOW),
    ],
    ids=["get", "batch-get", "transaction", "index-query", "update", "swallowed-condition"],
)
def test_dynamo_failures_are_dependency_errors(in_process_aws: None, call: Callable[[World], Any]) -> None:
    # given: tables that were never created
    world = _dynamo_world(f"missing{uuid.uuid4().hex[:8]}")
    # when / then
    with pytest.raises(DependencyError, match=r"create the tables|retry later"):
        call(world)
