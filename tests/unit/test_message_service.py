"""send_campaign_message, get_campaign_message and list_campaign_messages with in-memory fakes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from eventface.domain.errors import DependencyError, InvalidInputError, NotFoundError, StateConflictError
from eventface.domain.model import Consent, JobKind, NotificationJob, Participant, Progress, Stamp
from eventface.domain.vip import CampaignMessage, Segment
from eventface.services.messages import (
    get_campaign_message,
    list_campaign_messages,
    message_job_id,
    send_campaign_message,
)

TENANT = "acme"
CAMPAIGN = "rally"
CHECKPOINTS = ("gate", "hall", "roof")
BODY = {"ja": "ご来場ありがとうございます", "en": "Thank you for coming"}
TITLE = {"ja": "お知らせ", "en": "News"}
EVERYBODY = Segment()


@pytest.fixture
def rally(make_campaign: Callable[..., Any]) -> Any:
    """A live rally of three checkpoints, two stamps to complete."""
    return make_campaign(CAMPAIGN, checkpoints=CHECKPOINTS, required=2)


@pytest.fixture
def add_participant(world: Any) -> Callable[..., Participant]:
    """Stores a participant with ``stamps`` stamps (completed from two on), as a scan would."""

    def add(
        participant_id: str,
        *,
        stamps: int = 0,
        locale: str = "en",
        push_endpoint: str | None = "fcm:token",
        campaign_id: str = CAMPAIGN,
    ) -> Participant:
        now = world.clock.now()
        participant = Participant(
            TENANT,
            campaign_id,
            participant_id,
            f"nick-{participant_id}",
            Consent(given=True, at=now, text_version="v1"),
            now,
            push_endpoint=push_endpoint,
            locale=locale,
        )
        world.participants.add(participant)
        if stamps:
            progress = Progress(
                TENANT,
                campaign_id,
                participant_id,
                frozenset(CHECKPOINTS[:stamps]),
                completed_at=now if stamps >= 2 else None,
            )
            stamp = Stamp(TENANT, campaign_id, participant_id, CHECKPOINTS[0], "device-1", now)
            assert world.stamps.put(stamp, progress, 0)
        return participant

    return add


def _send(world: Any, segment: Segment = EVERYBODY, **changes: Any) -> CampaignMessage:
    values: dict[str, Any] = {
        "tenant_id": TENANT,
        "campaign_id": CAMPAIGN,
        "title": TITLE,
        "body": BODY,
        "segment": segment,
        "created_by": "marketer@acme",
    } | changes
    return send_campaign_message(world.services.deps, **values)


def _jobs(world: Any) -> list[NotificationJob]:
    jobs: list[NotificationJob] = world.messages.jobs
    return jobs


@pytest.fixture
def population(rally: Any, add_participant: Callable[..., Participant]) -> None:
    """p0: no stamp; p1: one; p2: two (completed); p3: three (completed)."""
    for stamps in range(4):
        add_participant(f"p{stamps}", stamps=stamps)


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        pytest.param(Segment(), ["p0", "p1", "p2", "p3"], id="everybody"),
        pytest.param(Segment(min_stamps=1, completed=False), ["p1"], id="at-least-1-not-completed"),
        pytest.param(Segment(completed=True), ["p2", "p3"], id="all-completed"),
        pytest.param(Segment(completed=False), ["p0", "p1"], id="not-completed"),
        pytest.param(Segment(min_stamps=3), ["p3"], id="at-least-3"),
    ],
)
def test_send_campaign_message_targets_the_segment(
    world: Any, population: None, segment: Segment, expected: list[str]
) -> None:
    # when
    message = _send(world, segment)
    # then one job per matching participant, counted, and the message stored as returned
    assert [job.participant_id for job in _jobs(world)] == expected
    assert message.targeted == len(expected)
    assert (message.delivered, message.failed, message.no_endpoint) == (0, 0, 0)
    assert world.messages.get(TENANT, CAMPAIGN, message.message_id) == message


def test_send_campaign_message_builds_complete_jobs(world: Any, population: None) -> None:
    # when
    message = _send(world, Segment(min_stamps=3))
    # then
    (job,) = _jobs(world)
    assert job == NotificationJob(
        job_id=message_job_id(TENANT, CAMPAIGN, message.message_id, "p3"),
        kind=JobKind.MESSAGE,
        tenant_id=TENANT,
        campaign_id=CAMPAIGN,
        participant_id="p3",
        checkpoint_id="",
        stamps=3,
        required=2,
        created_at=world.clock.now(),
        message_id=message.message_id,
    )
    assert message.created_at == world.clock.now()
    assert message.created_by == "marketer@acme"
    assert message.segment == Segment(min_stamps=3)
    assert len(message.message_id) == 32


def test_send_campaign_message_job_ids_are_stable_and_unique(world: Any, population: None) -> None:
    # when the same segment gets two messages
    first = _send(world)
    second = _send(world)
    # then each job id is the hash of (message, participant): unique, and reproducible for a retry
    jobs = _jobs(world)
    ids = [job.job_id for job in jobs]
    assert len(set(ids)) == len(ids) == 8
    for job in jobs:
        assert job.message_id in (first.message_id, second.message_id)
        assert job.job_id == message_job_id(TENANT, CAMPAIGN, job.message_id or "", job.participant_id)
    assert first.message_id != second.message_id
    assert message_job_id("a", "b", "c", "d") == message_job_id("a", "b", "c", "d")
    assert message_job_id("a", "b", "c", "d") != message_job_id("a", "b", "c", "e")


def test_send_campaign_message_targets_participants_without_push_endpoint(
    world: Any, rally: Any, add_participant: Callable[..., Participant]
) -> None:
    # given one participant who can be pushed to and one who cannot
    add_participant("with", push_endpoint="inbox:")
    add_participant("without", push_endpoint=None)
    # when
    message = _send(world)
    # then both are targeted (delivery counts the second as no_endpoint)
    assert message.targeted == 2
    assert sorted(job.participant_id for job in _jobs(world)) == ["with", "without"]


def test_send_campaign_message_to_nobody_is_stored_with_zero_targeted(
    world: Any, rally: Any, add_participant: Callable[..., Participant]
) -> None:
    add_participant("p0")
    message = _send(world, Segment(completed=True))
    assert message.targeted == 0
    assert _jobs(world) == []
    assert list_campaign_messages(world.services.deps, TENANT, CAMPAIGN).items == (message,)


def test_send_campaign_message_ignores_other_campaigns_participants(
    world: Any, rally: Any, make_campaign: Callable[..., Any], add_participant: Callable[..., Participant]
) -> None:
    make_campaign("other", checkpoints=CHECKPOINTS)
    add_participant("mine")
    add_participant("theirs", campaign_id="other")
    assert _send(world).targeted == 1
    assert [job.participant_id for job in _jobs(world)] == ["mine"]


def test_send_campaign_message_stores_trimmed_texts(
    world: Any, rally: Any, add_participant: Callable[..., Participant]
) -> None:
    add_participant("p")
    message = _send(world, title={"en": "  News "}, body={"en": "\n Hello  "}, created_by=" m ")
    assert (dict(message.title), dict(message.body), message.created_by) == (
        {"en": "News"},
        {"en": "Hello"},
        "m",
    )
    assert world.messages.get(TENANT, CAMPAIGN, message.message_id).body == {"en": "Hello"}


def test_send_campaign_message_to_a_draft_is_refused(
    world: Any, make_campaign: Callable[..., Any], add_participant: Callable[..., Participant]
) -> None:
    # given a draft with a registered participant
    make_campaign(CAMPAIGN, checkpoints=CHECKPOINTS, live=False)
    add_participant("p")
    # when / then
    with pytest.raises(StateConflictError, match="is a draft: publish it before sending messages"):
        _send(world)
    assert _jobs(world) == []


def test_send_campaign_message_after_the_end_thanks_completers(world: Any, population: None) -> None:
    # given the rally has ended
    world.services.end_campaign(TENANT, CAMPAIGN)
    world.clock.advance(timedelta(days=2).total_seconds())
    # when
    message = _send(world, Segment(completed=True), body={"en": "Thanks for finishing!"})
    # then
    assert message.targeted == 2
    assert {job.message_id for job in _jobs(world)} == {message.message_id}


def test_unknown_campaign_is_not_found_for_every_message_service(world: Any) -> None:
    deps = world.services.deps
    with pytest.raises(NotFoundError):
        _send(world, campaign_id="nope")
    with pytest.raises(NotFoundError):
        get_campaign_message(deps, TENANT, "nope", "m-1")
    with pytest.raises(NotFoundError):
        list_campaign_messages(deps, TENANT, "nope")


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        pytest.param({"body": {}}, "body must give the text per locale", id="empty-body"),
        pytest.param({"body": {"en": "   "}}, r"text \(en\) must be 1-500", id="blank-body"),
        pytest.param(
            {"body": {"fr": "Bonjour"}}, "locale 'fr' is not supported: use ja, en", id="body-locale"
        ),
        pytest.param({"title": {"de": "Hallo"}}, "locale 'de' is not supported", id="title-locale"),
        pytest.param({"body": {"en": "x" * 501}}, r"text \(en\) must be 1-500", id="body-too-long"),
        pytest.param({"title": {"ja": "題" * 101}}, r"text \(ja\) must be 1-100", id="title-too-long"),
        pytest.param(
            {"segment": Segment(min_stamps=-1)}, "min_stamps must be from 0 to 100", id="negative-min"
        ),
        pytest.param({"segment": Segment(min_stamps=4)}, "has only 3 checkpoints: nobody", id="min-over-max"),
        pytest.param({"created_by": " "}, "created_by is empty", id="no-sender"),
    ],
)
def test_send_campaign_message_refuses_invalid_messages(
    world: Any, population: None, changes: dict[str, Any], error: str
) -> None:
    with pytest.raises(InvalidInputError, match=error):
        _send(world, **changes)
    assert _jobs(world) == []
    assert list_campaign_messages(world.services.deps, TENANT, CAMPAIGN).items == ()


def test_send_campaign_message_walks_every_page_with_one_progress_read_per_page(
    world: Any, rally: Any, add_participant: Callable[..., Participant], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given more participants than a page holds, every third one completed, and a stamp book that
    # notes each batch read
    page = world.services.deps.policy.max_page
    count = page * 2 + 50
    for i in range(count):
        add_participant(f"p{i:04d}", stamps=2 if i % 3 == 0 else 0)
    batches: list[int] = []
    real_progress_many = world.stamps.progress_many

    def progress_many(tenant_id: str, campaign_id: str, ids: Any) -> Any:
        batches.append(len(ids))
        return real_progress_many(tenant_id, campaign_id, ids)

    monkeypatch.setattr(world.stamps, "progress_many", progress_many)
    # when
    message = _send(world, Segment(completed=True))
    # then every participant was read once, in a read per page; the matches kept in listing order
    expected = [f"p{i:04d}" for i in range(count) if i % 3 == 0]
    assert [job.participant_id for job in _jobs(world)] == expected
    assert message.targeted == len(expected)
    assert batches == [page, page, 50]


def test_send_campaign_message_store_failure_while_reading_stores_nothing(
    world: Any, rally: Any, add_participant: Callable[..., Participant], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a stamp book whose batch read fails
    for i in range(40):
        add_participant(f"p{i:02d}")

    def progress_many(tenant_id: str, campaign_id: str, ids: Any) -> Any:
        raise DependencyError("reading the participants' progress was throttled by DynamoDB: retry")

    monkeypatch.setattr(world.stamps, "progress_many", progress_many)
    # when / then the error reaches the caller and nothing was sent
    with pytest.raises(DependencyError, match="throttled"):
        _send(world)
    assert _jobs(world) == []
    assert list_campaign_messages(world.services.deps, TENANT, CAMPAIGN).items == ()


def test_get_campaign_message_returns_the_counts(world: Any, population: None) -> None:
    # given a sent message, one delivery and one without endpoint counted
    message = _send(world)
    world.messages.count(TENANT, CAMPAIGN, message.message_id, "delivered")
    world.messages.count(TENANT, CAMPAIGN, message.message_id, "no_endpoint")
    # when
    found = get_campaign_message(world.services.deps, TENANT, CAMPAIGN, message.message_id)
    # then
    assert (found.targeted, found.delivered, found.no_endpoint, found.failed) == (4, 1, 1, 0)


def test_get_campaign_message_unknown_message_is_not_found(world: Any, rally: Any) -> None:
    with pytest.raises(NotFoundError, match="message m-1 does not exist"):
        get_campaign_message(world.services.deps, TENANT, CAMPAIGN, "m-1")


def test_list_campaign_messages_newest_first_in_pages(world: Any, population: None) -> None:
    # given three messages sent a minute apart
    sent = []
    for _ in range(3):
        sent.append(_send(world))
        world.clock.advance(60)
    deps = world.services.deps
    # when
    first = list_campaign_messages(deps, TENANT, CAMPAIGN, limit=2)
    second = list_campaign_messages(deps, TENANT, CAMPAIGN, limit=2, cursor=first.cursor)
    # then
    assert [m.message_id for m in (*first.items, *second.items)] == [m.message_id for m in reversed(sent)]
    assert second.cursor is None


@pytest.mark.parametrize("limit", [0, 101])
def test_list_campaign_messages_limit_out_of_range_is_refused(world: Any, rally: Any, limit: int) -> None:
    with pytest.raises(InvalidInputError, match="limit must be between 1 and 100"):
        list_campaign_messages(world.services.deps, TENANT, CAMPAIGN, limit=limit)


def test_send_campaign_message_retried_with_its_idempotency_key_is_one_message(
    world: Any, population: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: the first attempt stores the message but fails while queueing its jobs
    store = world.messages
    real_add = store.add

    def add_then_fail(message: CampaignMessage, jobs: Any) -> None:
        real_add(message, jobs[:1])
        raise DependencyError("queueing the jobs failed: retry")

    monkeypatch.setattr(store, "add", add_then_fail)
    with pytest.raises(DependencyError):
        _send(world, idempotency_key="send-1")
    monkeypatch.setattr(store, "add", real_add)
    # when: the client retries with the same key, then sends twice more
    retried = _send(world, idempotency_key="send-1")
    again = _send(world, idempotency_key="send-1")
    # then: one message, every participant's job queued exactly once
    assert retried.message_id == again.message_id
    assert len(list_campaign_messages(world.services.deps, TENANT, CAMPAIGN).items) == 1
    job_ids = [job.job_id for job in _jobs(world)]
    assert len(job_ids) == len(set(job_ids)) == retried.targeted


def test_send_campaign_message_idempotency_key_reused_for_another_message_is_a_conflict(
    world: Any, population: None
) -> None:
    # given
    _send(world, idempotency_key="send-2")
    # when / then
    with pytest.raises(StateConflictError, match="another message"):
        _send(world, idempotency_key="send-2", body={"en": "Something else"})
    with pytest.raises(InvalidInputError, match="idempotency key"):
        _send(world, idempotency_key="x" * 129)
