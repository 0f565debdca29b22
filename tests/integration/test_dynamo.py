"""The DynamoDB adapters, the outbox relay and SQS against moto in-process (``mock_aws``).

Includes the invariants under concurrency: one stamp per participant and checkpoint, and
completion exactly once when two checkpoints scan the same person at the same time.
"""

from __future__ import annotations

import functools
import json
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eventface import aws
from eventface.adapters.dynamo_models import OutboxItem
from eventface.adapters.dynamo_repositories import (
    DynamoCampaignRepository,
    DynamoDeviceRegistry,
    DynamoHistoryLog,
    DynamoParticipantRepository,
    DynamoScanLedger,
    DynamoStampBook,
    DynamoTables,
)
from eventface.adapters.memory import (
    TEST_CURSOR_KEY,
    FixedClock,
    InMemoryFaceAnalyzer,
    InMemoryGallery,
    unit_vector,
)
from eventface.adapters.sqs_queue import SqsSender
from eventface.bootstrap import Services, bootstrap
from eventface.consumers.outbox_relay import relay
from eventface.domain.access import secret_hash
from eventface.domain.cursors import CursorSeal
from eventface.domain.errors import (
    AlreadyExistsError,
    InvalidInputError,
    NotFoundError,
    StateConflictError,
    UnauthorizedError,
)
from eventface.domain.model import (
    Campaign,
    CampaignStatus,
    Checkpoint,
    Consent,
    CredentialKind,
    Device,
    DeviceCredential,
    JobKind,
    NotificationJob,
    Participant,
    Progress,
    RecognitionEvent,
    ScanOutcome,
    ScanState,
    ScanWrite,
    Stamp,
    job_id_for,
)
from eventface.local.pump import EventPump
from eventface.local.resources import stream_arns
from eventface.services.deps import Policy
from eventface.services.participants import Registration
from eventface.services.scans import Scan
from eventface.settings import Settings

NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def tables(table_prefix: str) -> DynamoTables:
    """Fresh tables under a unique prefix, on moto in-process (see conftest)."""
    return DynamoTables(table_prefix)


@pytest.fixture
def make_campaign(tables: DynamoTables) -> Callable[..., Campaign]:
    repository = DynamoCampaignRepository(tables)

    def make(campaign_id: str = "rally", **changes: Any) -> Campaign:
        campaign = Campaign(
            tenant_id="acme",
            campaign_id=campaign_id,
            name="Rally",
            starts_at=NOW - timedelta(hours=1),
            ends_at=NOW + timedelta(hours=8),
            status=CampaignStatus.LIVE,
            checkpoints=(Checkpoint("gate", "Gate"), Checkpoint("hall", "Hall")),
            stamps_required=2,
            reward_text="Prize at the desk",
        )
        return repository.add(replace(campaign, **changes))

    return make


def _stamp(checkpoint_id: str, participant_id: str = "p1") -> Stamp:
    return Stamp("acme", "rally", participant_id, checkpoint_id, f"dev-{checkpoint_id}", NOW)


def test_dynamo_campaign_round_trip_and_optimistic_lock(tables, make_campaign):
    # given
    repository = DynamoCampaignRepository(tables)
    created = make_campaign()
    # when
    loaded = repository.get("acme", "rally")
    saved = repository.save(replace(loaded, name="Renamed"))
    # then
    assert loaded == created and loaded.version == 1
    assert saved.version == 2 and repository.get("acme", "rally").name == "Renamed"
    with pytest.raises(StateConflictError, match="changed meanwhile"):
        repository.save(replace(loaded, name="Stale"))


def test_dynamo_campaign_add_twice_is_already_exists(tables, make_campaign):
    # given
    make_campaign()
    # when / then
    with pytest.raises(AlreadyExistsError):
        make_campaign()


def test_dynamo_campaign_missing_is_not_found(tables):
    # when / then
    with pytest.raises(NotFoundError):
        DynamoCampaignRepository(tables).get("acme", "nope")


def test_dynamo_campaign_list_pages(tables, make_campaign):
    # given
    for i in range(3):
        make_campaign(f"c{i}")
    repository = DynamoCampaignRepository(tables)
    # when
    first = repository.list("acme", limit=2)
    second = repository.list("acme", limit=2, cursor=first.cursor)
    # then
    assert [c.campaign_id for c in first.items + second.items] == ["c0", "c1", "c2"]
    assert second.cursor is None


@pytest.mark.parametrize(
    "cursor", ["not-base64!", "bm90IGpzb24", "WzFd"], ids=["garbage", "not-json", "not-object"]
)
def test_dynamo_bad_cursor_is_invalid_input(tables, cursor):
    # when / then
    with pytest.raises(InvalidInputError, match="cursor"):
        DynamoCampaignRepository(tables).list("acme", cursor=cursor)


def test_dynamo_participant_dead_push_endpoint_is_forgotten_unless_replaced(tables):
    # given
    repository = DynamoParticipantRepository(tables)
    repository.add(Participant("acme", "rally", "p1", "Ann", Consent(True, NOW), NOW, "fcm:old"))
    # when / then: an older endpoint reported dead leaves the current one; the current one goes
    assert repository.forget_push_endpoint("acme", "rally", "p1", "fcm:older") is False
    assert repository.get("acme", "rally", "p1").push_endpoint == "fcm:old"
    assert repository.forget_push_endpoint("acme", "rally", "p1", "fcm:old") is True
    assert repository.get("acme", "rally", "p1").push_endpoint is None
    assert repository.forget_push_endpoint("acme", "rally", "nobody", "fcm:old") is False


def test_dynamo_participant_round_trip_and_delete(tables):
    # given
    repository = DynamoParticipantRepository(tables)
    participant = Participant(
        "acme", "rally", "p1", "Ann", Consent(True, NOW), NOW, "fcm:token-1", 2, locale="ja"
    )
    repository.add(participant)
    # when / then
    assert repository.get("acme", "rally", "p1") == participant
    with pytest.raises(AlreadyExistsError):
        repository.add(participant)
    assert repository.delete("acme", "rally", "p1") is True
    assert repository.delete("acme", "rally", "p1") is False
    assert repository.find("acme", "rally", "p1") is None


def _write(
    checkpoint_id: str | None,
    *,
    at: datetime = NOW,
    version: int = 0,
    cooldown: int = 30,
    stamped: tuple[str, ...] = (),
) -> ScanWrite:
    """A scan's write of p1 at ``checkpoint_id`` (None: no new stamp), progress ``stamped`` before."""
    event = RecognitionEvent(
        "acme", "rally", uuid.uuid4().hex, at, "dev-1", checkpoint_id or "gate", ScanOutcome.STAMPED, "p1",
        0.7, 0.55, False, None, None,
    )  # fmt: skip
    write = ScanWrite(event, "acme#rally#p1#gate", at + timedelta(seconds=cooldown), version=version)
    if checkpoint_id is None:
        return write
    stamp = _stamp(checkpoint_id)
    outcome = Progress("acme", "rally", "p1", frozenset(stamped)).with_stamp(checkpoint_id, at, 2)
    job = NotificationJob(
        job_id_for(JobKind.STAMP, stamp), JobKind.STAMP, "acme", "rally", "p1", checkpoint_id,
        outcome.progress.stamps, 2, at,
    )  # fmt: skip
    return replace(write, stamp=stamp, progress=outcome.progress, jobs=(job,))


def _stream_inserts(tables: DynamoTables) -> int:
    """INSERT records on the outbox table's stream so far."""
    seen: list[str] = []

    def collect(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.extend(r["eventName"] for r in event["Records"])
        return {"batchItemFailures": []}

    EventPump({}).poll_stream_once(stream_arns(tables.prefix)["outbox"], collect)
    return seen.count("INSERT")


def _outbox() -> list[OutboxItem]:
    return list(OutboxItem.scan())


def test_dynamo_ledger_reads_an_unknown_participant_as_empty(tables):
    # given
    ledger = DynamoScanLedger(tables)
    # when
    state = ledger.read("acme", "rally", "nobody", "acme#rally#nobody#gate")
    # then
    assert state == ScanState(participant=None, progress=Progress("acme", "rally", "nobody"))


def test_dynamo_ledger_commits_all_or_nothing(tables):
    # given
    ledger, book, log = DynamoScanLedger(tables), DynamoStampBook(tables), DynamoHistoryLog(tables)
    DynamoParticipantRepository(tables).add(
        Participant("acme", "rally", "p1", "Ann", Consent(True, NOW, "v1"), NOW)
    )
    # when: the first scan commits; a second one that read the same state does not
    first = ledger.commit(_write("gate", cooldown=0))
    lost = ledger.commit(_write("gate", at=NOW + timedelta(seconds=1), cooldown=0))
    # then
    assert (first, lost) == (True, False)
    state = ledger.read("acme", "rally", "p1", "acme#rally#p1#gate")
    assert state.participant is not None and state.participant.nickname == "Ann"
    assert state.progress.checkpoint_ids == {"gate"} and state.version == 1
    assert state.cooldown_until == NOW  # the lost write's cooldown was not written either
    assert len(book.stamps("acme", "rally", "p1")) == 1
    assert len(log.list("acme", "rally").items) == 1
    assert [i.kind for i in _outbox()] == ["stamp"]
    assert _stream_inserts(tables) == 1  # the cancelled transaction left no stream record
    # when: the next stamp, at the version read
    second = ledger.commit(_write("hall", at=NOW + timedelta(seconds=2), version=1, stamped=("gate",)))
    # then
    assert second is True
    progress = book.progress("acme", "rally", "p1")
    assert progress.checkpoint_ids == {"gate", "hall"} and progress.completed_at == NOW + timedelta(seconds=2)


def test_dynamo_ledger_cooldown_holds_then_expires(tables):
    # given
    ledger = DynamoScanLedger(tables)
    # when / then: history-only writes (no stamp), each taking the same cooldown
    assert ledger.commit(_write(None)) is True
    assert ledger.commit(_write(None, at=NOW + timedelta(seconds=29))) is False
    assert ledger.commit(_write(None, at=NOW + timedelta(seconds=30))) is True
    assert ledger.read("acme", "rally", "p1", "acme#rally#p1#gate").cooldown_until == NOW + timedelta(
        seconds=60
    )


def test_dynamo_stamp_book_delete_participant(tables):
    # given
    book, ledger = DynamoStampBook(tables), DynamoScanLedger(tables)
    assert ledger.commit(_write("gate", cooldown=0))
    assert ledger.commit(_write("hall", version=1, cooldown=0, stamped=("gate",)))
    other = _write("gate", cooldown=0)
    assert ledger.commit(replace(other, cooldown_key="p2", stamp=replace(_stamp("gate", "p2")), version=0))
    # when
    deleted = book.delete_participant("acme", "rally", "p1")
    # then
    assert deleted == 2
    assert book.stamps("acme", "rally", "p1") == [] and book.progress("acme", "rally", "p1").stamps == 0
    assert len(book.stamps("acme", "rally", "p2")) == 1


def _event(i: int, participant_id: str | None) -> RecognitionEvent:
    at = NOW + timedelta(seconds=i)
    outcome = ScanOutcome.STAMPED if participant_id else ScanOutcome.UNKNOWN
    return RecognitionEvent(
        "acme", "rally", f"e{i}", at, "dev-1", "gate", outcome, participant_id, 0.7, 0.55, False,
        None if participant_id else "unknown", None if participant_id else at + timedelta(hours=72),
    )  # fmt: skip


def test_dynamo_history_newest_first_pages_and_erasure(tables):
    # given
    log = DynamoHistoryLog(tables)
    events = [_event(0, "p1"), _event(1, None), _event(2, "p1"), _event(3, "p2")]
    for event in events:
        log.record(event)
    # when
    first = log.list("acme", "rally", limit=3)
    rest = log.list("acme", "rally", limit=3, cursor=first.cursor)
    deleted = log.delete_participant("acme", "rally", "p1")
    # then
    assert [e.event_id for e in first.items + rest.items] == ["e3", "e2", "e1", "e0"]
    assert first.items[2] == events[1] and first.items[2].expires_at == NOW + timedelta(seconds=1, hours=72)
    assert deleted == 2 and log.for_participant("acme", "rally", "p1") == ()
    assert [e.event_id for e in log.list("acme", "rally").items] == ["e3", "e1"]


def _credential(secret: str, kind: CredentialKind, **changes: Any) -> DeviceCredential:
    return replace(DeviceCredential(secret_hash(secret), kind, "acme", "d1", "rally", "gate"), **changes)


def test_dynamo_device_lifecycle_activate_rotate_revoke(tables):
    # given: a pending device with its activation code
    registry = DynamoDeviceRegistry(tables)
    device = Device("acme", "d1", "rally", "gate", "camera", NOW)
    code = _credential("code-1", CredentialKind.ACTIVATION, expires_at=NOW + timedelta(minutes=10))
    registry.add(device, code)
    # when: activated, rotated, touched, listed
    key = _credential("key-1", CredentialKind.KEY)
    active = registry.activate(code, key, NOW)
    with pytest.raises(UnauthorizedError, match="no longer valid"):
        registry.activate(code, _credential("key-x", CredentialKind.KEY), NOW)
    rotated = registry.rotate(key, _credential("key-2", CredentialKind.KEY), NOW + timedelta(minutes=5))
    registry.touch("acme", "d1", NOW + timedelta(seconds=3))
    listed = registry.list("acme").items
    # then
    assert registry.credential(secret_hash("key-x")) is None
    assert active.status == "active" and active.key_hash == secret_hash("key-1")
    assert registry.credential(secret_hash("code-1")).used_at == NOW  # type: ignore[union-attr]
    assert rotated.key_hash == secret_hash("key-2")
    assert registry.credential(secret_hash("key-1")).expires_at == NOW + timedelta(minutes=5)  # type: ignore[union-attr]
    assert [d.last_seen_at for d in listed] == [NOW + timedelta(seconds=3)]
    assert registry.list("other").items == ()
    # when: revoked
    revoked = registry.revoke("acme", "d1", NOW)
    # then: every key is gone at once, and a foreign tenant finds nothing
    assert revoked.status == "revoked"
    assert (
        registry.credential(secret_hash("key-1")) is None
        and registry.credential(secret_hash("key-2")) is None
    )
    with pytest.raises(NotFoundError):
        registry.revoke("other", "d1", NOW)
    with pytest.raises(NotFoundError, match="revoked"):
        registry.issue_activation(_credential("code-2", CredentialKind.ACTIVATION))
    with pytest.raises(AlreadyExistsError):
        registry.add(device, _credential("code-3", CredentialKind.ACTIVATION))


@pytest.fixture
def queue_url(tables) -> str:
    return str(aws.client("sqs").create_queue(QueueName=f"jobs-{uuid.uuid4().hex[:8]}")["QueueUrl"])


@pytest.fixture
def services(tables, queue_url) -> tuple[Services, InMemoryFaceAnalyzer, FixedClock]:
    faces = InMemoryFaceAnalyzer()
    clock = FixedClock(NOW)
    settings = Settings(
        {"EVENTFACE_TABLE_PREFIX": tables.prefix, "EVENTFACE_NOTIFICATION_QUEUE_URL": queue_url}
    )
    wired = bootstrap(
        settings,
        faces=faces,
        gallery=InMemoryGallery(threshold=0.9),
        clock=clock,
        policy=Policy(),
        cursors=CursorSeal(TEST_CURSOR_KEY),
    )
    return wired, faces, clock


def _relay(tables: DynamoTables, queue_url: str) -> int:
    """Run the outbox relay over the outbox table's stream once, as Lambda would; records read."""
    arn = stream_arns(tables.prefix)["outbox"]
    sender = SqsSender({"notifications": queue_url})
    pump = EventPump({}, stream_consumers={})
    return pump.poll_stream_once(arn, functools.partial(relay, sender=sender))


def _receive(queue_url: str) -> list[dict[str, Any]]:
    sqs = aws.client("sqs")
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def test_record_scan_end_to_end_on_dynamo_queues_jobs_in_sqs(tables, services, make_campaign, queue_url):
    # given
    wired, faces, clock = services
    make_campaign()
    faces.faces[b"ann"] = unit_vector(1.0, 0.0)
    participant = wired.register_participant(
        Registration("acme", "rally", b"ann", "Ann", consent=True, push_endpoint="fcm:token-1")
    )
    gate = wired.activate_device(wired.register_device("acme", "rally", "gate").activation_code)
    hall = wired.activate_device(wired.register_device("acme", "rally", "hall").activation_code)
    # when
    first = wired.record_scan(Scan(wired.authenticate_device(gate.key), "gate", photo=b"ann"))
    clock.advance(1)
    second = wired.record_scan(Scan(wired.authenticate_device(hall.key), "hall", photo=b"ann"))
    clock.advance(1)
    repeat = wired.record_scan(Scan(wired.authenticate_device(hall.key), "hall", photo=b"ann"))
    # then
    assert (first.new_stamp, first.stamps, first.completed) == (True, 1, False)
    assert (second.new_stamp, second.stamps, second.completed) == (True, 2, True)
    assert repeat.reason == "cooldown" and repeat.already_stamped
    assert _receive(queue_url) == []  # the jobs wait in the outbox until the relay runs
    assert _relay(tables, queue_url) == 3
    jobs = _receive(queue_url)
    assert sorted((j["kind"], j["checkpoint_id"]) for j in jobs) == [
        ("completion", "hall"),
        ("stamp", "gate"),
        ("stamp", "hall"),
    ]
    assert {j["participant_id"] for j in jobs} == {participant.participant_id}
    # the outbox and the queue hold ids and counts only: no nickname, push text or endpoint
    assert not [j for j in jobs if {"text", "push_endpoint", "locale", "title"} & set(j)]
    stored = [item.body for item in _outbox()] + [json.dumps(j) for j in jobs]
    assert not [body for body in stored if "Ann" in body or "fcm:token-1" in body or "of 2" in body]
    history = wired.list_history("acme", "rally").items
    assert [e.outcome for e in history] == [ScanOutcome.COOLDOWN, ScanOutcome.STAMPED, ScanOutcome.STAMPED]
    # when erased
    receipt = wired.erase_participant("acme", "rally", participant.participant_id)
    # then
    assert receipt.verified and receipt.stamps_deleted == 2 and receipt.history_deleted == 3
    assert wired.list_history("acme", "rally").items == ()


def _register_people(wired: Services, faces: InMemoryFaceAnalyzer, count: int) -> list[str]:
    ids = []
    for i in range(count):
        photo = f"person-{i}".encode()
        faces.faces[photo] = unit_vector(*(1.0 if j == i else 0.0 for j in range(8)))
        ids.append(
            wired.register_participant(
                Registration("acme", "rally", photo, f"P{i}", consent=True)
            ).participant_id
        )
    return ids


def test_two_checkpoints_scanning_the_same_people_at_once_complete_each_exactly_once(
    tables, services, make_campaign, queue_url
):
    # given: 6 people, each scanned at both checkpoints at the same moment
    wired, faces, _ = services
    make_campaign()
    people = _register_people(wired, faces, 6)
    devices = {cp: wired.authenticate_device(_activated_key(wired, cp)) for cp in ("gate", "hall")}
    work = [(i, cp) for i in range(len(people)) for cp in devices]
    barrier = threading.Barrier(len(work))

    def scan(item: tuple[int, str]):
        i, cp = item
        barrier.wait()
        return i, wired.record_scan(Scan(devices[cp], cp, photo=f"person-{i}".encode()))

    # when
    with ThreadPoolExecutor(len(work)) as pool:
        results = list(pool.map(scan, work))
    # then
    book = DynamoStampBook(tables)
    for i, participant_id in enumerate(people):
        mine = [r for j, r in results if j == i]
        assert sum(r.new_stamp for r in mine) == 2
        assert sorted(r.stamps for r in mine) == [1, 2] and sum(r.completed for r in mine) == 1
        assert book.progress("acme", "rally", participant_id).completed_at is not None
    _relay(tables, queue_url)
    kinds = [j["kind"] for j in _receive_all(queue_url)]
    assert kinds.count("completion") == len(people) and kinds.count("stamp") == 2 * len(people)


def test_the_same_scan_sent_six_times_at_once_is_one_stamp(tables, services, make_campaign, queue_url):
    # given
    wired, faces, _ = services
    make_campaign()
    (participant_id,) = _register_people(wired, faces, 1)
    device = wired.authenticate_device(_activated_key(wired, "gate"))
    barrier = threading.Barrier(6)

    def scan(_: int):
        barrier.wait()
        return wired.record_scan(Scan(device, "gate", photo=b"person-0"))

    # when
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(scan, range(6)))
    # then
    assert sum(r.new_stamp for r in results) == 1
    assert all(r.recognised and r.stamps == 1 for r in results)
    assert sorted(r.reason or "" for r in results) == [""] + ["cooldown"] * 5
    assert len(DynamoStampBook(tables).stamps("acme", "rally", participant_id)) == 1
    assert len(wired.list_history("acme", "rally").items) == 6
    _relay(tables, queue_url)
    assert [j["kind"] for j in _receive_all(queue_url)] == ["stamp"]


def _receive_all(queue_url: str) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    while batch := _receive(queue_url):
        jobs += batch
    return jobs


def _activated_key(wired: Services, checkpoint_id: str) -> str:
    return wired.activate_device(wired.register_device("acme", "rally", checkpoint_id).activation_code).key


def test_dynamo_progress_many_reads_every_participant_in_batches(tables):
    # given: p1 has a stamp; 149 others have none (more than one BatchGetItem of 100 keys)
    ledger, book = DynamoScanLedger(tables), DynamoStampBook(tables)
    assert ledger.commit(_write("gate"))
    ids = ["p1", *(f"x{i:03d}" for i in range(149)), "p1"]
    # when
    progress = book.progress_many("acme", "rally", ids)
    # then: one entry per participant, the stamped one with its stamp, the others empty
    assert len(progress) == 150
    assert progress["p1"] == book.progress("acme", "rally", "p1")
    assert progress["p1"].checkpoint_ids == {"gate"}
    assert progress["x148"] == Progress("acme", "rally", "x148")
    assert book.progress_many("acme", "rally", []) == {}
