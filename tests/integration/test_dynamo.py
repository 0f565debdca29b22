"""The DynamoDB adapters and the SQS queue against moto in-process (``mock_aws``).

Includes the invariants under concurrency: one stamp per participant and checkpoint, and
completion exactly once when two checkpoints scan the same person at the same time.
"""

from __future__ import annotations

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
from eventface.adapters.dynamo_repositories import (
    DynamoCampaignRepository,
    DynamoCooldownLock,
    DynamoDeviceRegistry,
    DynamoHistoryLog,
    DynamoParticipantRepository,
    DynamoStampBook,
    DynamoTables,
)
from eventface.adapters.memory import FixedClock, InMemoryFaceAnalyzer, InMemoryGallery, unit_vector
from eventface.bootstrap import Services, bootstrap
from eventface.domain.errors import AlreadyExistsError, InvalidInputError, NotFoundError, StateConflictError
from eventface.domain.model import (
    Campaign,
    CampaignStatus,
    Checkpoint,
    Consent,
    Device,
    Participant,
    RecognitionEvent,
    ScanOutcome,
    Stamp,
)
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


def test_dynamo_participant_round_trip_and_delete(tables):
    # given
    repository = DynamoParticipantRepository(tables)
    participant = Participant("acme", "rally", "p1", "Ann", Consent(True, NOW), NOW, "arn:push", 2)
    repository.add(participant)
    # when / then
    assert repository.get("acme", "rally", "p1") == participant
    with pytest.raises(AlreadyExistsError):
        repository.add(participant)
    assert repository.delete("acme", "rally", "p1") is True
    assert repository.delete("acme", "rally", "p1") is False
    assert repository.find("acme", "rally", "p1") is None


def test_dynamo_stamp_book_records_once_and_completes_once(tables):
    # given
    book = DynamoStampBook(tables)
    # when
    first = book.record(_stamp("gate"), required=2)
    repeat = book.record(_stamp("gate"), required=2)
    second = book.record(_stamp("hall"), required=2)
    third = book.record(_stamp("roof"), required=2)
    # then
    assert (first.new_stamp, first.completed_now) == (True, False)
    assert (repeat.new_stamp, repeat.completed_now) == (False, False)
    assert (second.new_stamp, second.completed_now) == (True, True)
    assert (third.new_stamp, third.completed_now) == (True, False)
    progress = book.progress("acme", "rally", "p1")
    assert progress.checkpoint_ids == {"gate", "hall", "roof"} and progress.completed_at == NOW


def test_dynamo_stamp_book_two_checkpoints_at_once_complete_exactly_once(tables):
    # given: many participants, each scanned at both checkpoints at the same moment
    book = DynamoStampBook(tables)
    participants = [f"p{i}" for i in range(8)]
    work = [_stamp(cp, p) for p in participants for cp in ("gate", "hall")]
    barrier = threading.Barrier(len(work))

    def record(stamp: Stamp):
        barrier.wait()
        return stamp.participant_id, book.record(stamp, required=2)

    # when
    with ThreadPoolExecutor(len(work)) as pool:
        outcomes = list(pool.map(record, work))
    # then
    for participant in participants:
        mine = [o for p, o in outcomes if p == participant]
        assert sum(o.new_stamp for o in mine) == 2
        assert sum(o.completed_now for o in mine) == 1
        assert book.progress("acme", "rally", participant).stamps == 2


def test_dynamo_stamp_book_same_scan_twice_at_once_is_one_stamp(tables):
    # given
    book = DynamoStampBook(tables)
    barrier = threading.Barrier(6)

    def record(_: int):
        barrier.wait()
        return book.record(_stamp("gate"), required=2)

    # when
    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(record, range(6)))
    # then
    assert sum(o.new_stamp for o in outcomes) == 1
    assert len(book.stamps("acme", "rally", "p1")) == 1
    assert book.progress("acme", "rally", "p1").stamps == 1


def test_dynamo_stamp_book_delete_participant(tables):
    # given
    book = DynamoStampBook(tables)
    book.record(_stamp("gate"), required=3)
    book.record(_stamp("hall"), required=3)
    book.record(_stamp("gate", "p2"), required=3)
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


def test_dynamo_device_registry_lookup_and_revoke(tables):
    # given
    registry = DynamoDeviceRegistry(tables)
    device = Device("acme", "d1", "rally", "gate", "camera", "ab" * 32, NOW)
    registry.add(device)
    # when
    found = registry.by_key_hash("ab" * 32)
    revoked = registry.revoke("acme", "d1", NOW)
    # then
    assert found == device and registry.by_key_hash("cd" * 32) is None
    again = registry.by_key_hash("ab" * 32)
    assert revoked.revoked and again is not None and again.revoked_at == NOW
    with pytest.raises(AlreadyExistsError):
        registry.add(device)
    with pytest.raises(NotFoundError):
        registry.revoke("other", "d1", NOW)


def test_dynamo_cooldown_lock_holds_then_expires(tables):
    # given
    lock = DynamoCooldownLock(tables)
    # when / then
    assert lock.acquire("k", NOW, 30) is True
    assert lock.acquire("k", NOW + timedelta(seconds=29), 30) is False
    assert lock.acquire("k", NOW + timedelta(seconds=30), 30) is True
    assert lock.acquire("other", NOW, 30) is True


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
        settings, faces=faces, gallery=InMemoryGallery(threshold=0.9), clock=clock, policy=Policy()
    )
    return wired, faces, clock


def _receive(queue_url: str) -> list[dict[str, Any]]:
    sqs = aws.client("sqs")
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def test_record_scan_end_to_end_on_dynamo_queues_jobs_in_sqs(services, make_campaign, queue_url):
    # given
    wired, faces, clock = services
    make_campaign()
    faces.faces[b"ann"] = unit_vector(1.0, 0.0)
    participant = wired.register_participant(
        Registration("acme", "rally", b"ann", "Ann", consent=True, push_endpoint="arn:push")
    )
    gate = wired.register_device("acme", "rally", "gate")
    hall = wired.register_device("acme", "rally", "hall")
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
    jobs = _receive(queue_url)
    assert sorted((j["kind"], j["checkpoint_id"]) for j in jobs) == [
        ("completion", "hall"),
        ("stamp", "gate"),
        ("stamp", "hall"),
    ]
    assert {j["participant_id"] for j in jobs} == {participant.participant_id}
    assert all(j["push_endpoint"] == "arn:push" for j in jobs)
    history = wired.list_history("acme", "rally").items
    assert [e.outcome for e in history] == [ScanOutcome.COOLDOWN, ScanOutcome.STAMPED, ScanOutcome.STAMPED]
    # when erased
    receipt = wired.erase_participant("acme", "rally", participant.participant_id)
    # then
    assert receipt.verified and receipt.stamps_deleted == 2 and receipt.history_deleted == 3
    assert wired.list_history("acme", "rally").items == ()
