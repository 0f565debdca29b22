"""Pagination cursors (eventface.domain.cursors): valid only for the listing that issued them."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from eventface.domain.cursors import MAX_CURSOR_CHARS, REFUSED, CursorSeal, Listing
from eventface.domain.errors import InvalidInputError
from eventface.domain.model import Page

KEY = b"a test key of more than 16 bytes"
SEAL = CursorSeal(KEY)
SINCE = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
LISTING = Listing("acme", "history", "rally", {"device_id": "cam-1", "since": SINCE, "until": None})
POSITION = '{"campaign_key":{"S":"acme#rally"},"sk":{"S":"2026-05-01T09:00:00#e1"}}'


def _cursor(listing: Listing = LISTING, position: str = POSITION, seal: CursorSeal = SEAL) -> str:
    cursor = seal.seal(listing, Page((), position)).cursor
    assert cursor is not None
    return cursor


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_cursor_opens_to_its_position_for_the_listing_that_issued_it():
    # when
    opened = SEAL.open(LISTING, _cursor())
    # then
    assert opened == POSITION


def test_cursor_filter_that_is_none_is_no_filter():
    # given
    unfiltered = Listing("acme", "history", "rally", {"device_id": "cam-1", "since": SINCE})
    # when / then
    assert SEAL.open(unfiltered, _cursor()) == POSITION


def test_cursor_of_the_last_page_stays_none_and_no_cursor_opens_to_none():
    # when / then
    assert SEAL.seal(LISTING, Page((1, 2), None)).cursor is None
    assert SEAL.open(LISTING, None) is None
    assert SEAL.open(LISTING, "") is None


def test_cursor_keeps_the_items_of_the_page():
    # when
    page = SEAL.seal(LISTING, Page(("a", "b"), POSITION))
    # then
    assert page.items == ("a", "b") and page.cursor != POSITION


def test_cursor_reveals_no_position_in_clear_text():
    # when
    cursor = _cursor()
    # then: opaque to the client (it is neither the position nor JSON)
    assert "acme" not in cursor and "{" not in cursor


@pytest.mark.parametrize(
    "other",
    [
        Listing("globex", "history", "rally", dict(LISTING.filters)),
        Listing("acme", "audit", "rally", dict(LISTING.filters)),
        Listing("acme", "history", "other-campaign", dict(LISTING.filters)),
        Listing("acme", "history", "rally", {**LISTING.filters, "device_id": "cam-2"}),
        Listing("acme", "history", "rally", {**LISTING.filters, "since": None}),
        Listing("acme", "history", "rally", {**LISTING.filters, "checkpoint_id": "gate"}),
    ],
    ids=[
        "other-tenant",
        "other-listing",
        "other-parent",
        "other-filter-value",
        "filter-dropped",
        "filter-added",
    ],
)
def test_cursor_is_refused_by_any_other_listing(other):
    # when / then
    with pytest.raises(InvalidInputError) as refused:
        SEAL.open(other, _cursor())
    assert str(refused.value) == REFUSED


def _tampered(cursor: str) -> str:
    payload, mac = cursor.split(".")
    position = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).replace(b"e1", b"e9")
    return f"{_b64(position)}.{mac}"


def _flipped(cursor: str, index: int) -> str:
    swapped = "A" if cursor[index] != "A" else "B"
    return cursor[:index] + swapped + cursor[index + 1 :]


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(_tampered, id="position-changed"),
        pytest.param(lambda c: _flipped(c, 0), id="first-char-flipped"),
        pytest.param(lambda c: _flipped(c, len(c) - 1), id="last-char-flipped"),
        pytest.param(lambda c: c[:-3], id="truncated"),
        pytest.param(lambda c: c.split(".")[0], id="signature-dropped"),
        pytest.param(lambda c: c + "AAAA", id="extended"),
        pytest.param(lambda c: c.replace(".", "!.", 1), id="stray-character"),
        pytest.param(lambda c: c + "=", id="padded"),
        pytest.param(lambda c: _b64(POSITION.encode()), id="raw-position"),
        pytest.param(lambda c: _b64(json.dumps({"tenant_id": {"S": "globex"}}).encode()), id="forged-json"),
        pytest.param(lambda c: "not a cursor!", id="garbage"),
        pytest.param(lambda c: "." * 3, id="only-dots"),
        pytest.param(lambda c: c + "A" * MAX_CURSOR_CHARS, id="too-long"),
    ],
)
def test_forged_or_damaged_cursor_is_refused(forge):
    # when / then
    with pytest.raises(InvalidInputError) as refused:
        SEAL.open(LISTING, forge(_cursor()))
    assert str(refused.value) == REFUSED


def test_cursor_of_another_key_is_refused():
    # given: a cursor of another deployment (or of the key before a rotation)
    other = _cursor(seal=CursorSeal(b"another key of more than 16 bytes"))
    # when / then
    with pytest.raises(InvalidInputError, match="not issued for this listing"):
        SEAL.open(LISTING, other)


def test_cursor_page_opens_reads_and_seals():
    # given
    seen: list[str | None] = []

    def read(position: str | None) -> Page[int]:
        seen.append(position)
        return Page((1,), "next-position")

    # when
    first = SEAL.page(LISTING, None, read)
    second = SEAL.page(LISTING, first.cursor, read)
    # then
    assert seen == [None, "next-position"] and second.cursor == first.cursor


def test_cursor_page_reads_nothing_for_a_refused_cursor():
    # given
    reads: list[str | None] = []

    def read(position: str | None) -> Page[int]:
        reads.append(position)
        return Page((), None)

    # when
    with pytest.raises(InvalidInputError):
        SEAL.page(LISTING, "forged", read)
    # then
    assert reads == []


def test_cursor_key_shorter_than_16_bytes_is_refused():
    # when / then
    with pytest.raises(ValueError, match="16 bytes"):
        CursorSeal(b"short")
