"""Pagination cursors: opaque to clients, and valid only for the listing that issued them.

A repository pages with a *position* of its own (DynamoDB's LastEvaluatedKey, an offset). The
services never hand a position out as it is: :class:`CursorSeal` signs it (HMAC-SHA256) together
with the :class:`Listing` it belongs to (tenant, listing, parent id and filters), and opens a
cursor only for that same listing. A forged, tampered, truncated or foreign cursor (another
tenant's, another listing's, the same listing with other filters) is refused with
:class:`InvalidInputError` before any store sees it, so a position that reaches a repository is
always one the repository made for this very query.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Final, TypeVar

from eventface.domain.errors import InvalidInputError
from eventface.domain.model import Page

T = TypeVar("T")

#: What a refused cursor answers (the whole message: it must not help to forge one).
REFUSED: Final = "this cursor was not issued for this listing: start again without cursor"
#: Longest cursor accepted (a DynamoDB key of two attributes fits many times over).
MAX_CURSOR_CHARS: Final = 2048
#: Shortest signing key accepted, in bytes.
MIN_KEY_BYTES: Final = 16
_VERSION: Final = "c1"
_MAC_BYTES: Final = 16  # 128 bits of HMAC-SHA256: forging one is a 2**-128 guess per request
_KEY_LABEL: Final = b"eventface/pagination-cursor/v1"

FilterValue = str | int | datetime | None


def _text(value: FilterValue) -> str | int | None:
    return value.isoformat() if isinstance(value, datetime) else value


@dataclass(frozen=True, slots=True)
class Listing:
    """The listing a cursor belongs to: the tenant, what is listed (``history``), under which
    parent (a campaign or venue id; ``""`` for tenant-wide listings) and with which filters."""

    tenant_id: str
    name: str
    parent: str = ""
    filters: Mapping[str, FilterValue] = field(default_factory=dict)

    def scope(self) -> bytes:
        """A canonical encoding: two listings share it only if they list the same items (a filter
        that is None is no filter)."""
        filters = {name: _text(value) for name, value in sorted(self.filters.items()) if value is not None}
        return json.dumps(
            [_VERSION, self.tenant_id, self.name, self.parent, filters],
            separators=(",", ":"),
            ensure_ascii=True,
        ).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorSeal:
    """Signs positions into cursors for a listing, and opens them for that listing only.

    Parameters
    ----------
    key
        The platform's secret (at least 16 bytes); the signing key is derived from it with a
        label of its own, so the same secret may key other things without the uses mixing.
    """

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the cursor key must have at least {MIN_KEY_BYTES} bytes of secret")
        self._key = hmac.new(key, _KEY_LABEL, hashlib.sha256).digest()

    def _mac(self, listing: Listing, position: bytes) -> bytes:
        message = listing.scope() + b"\x00" + position
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_MAC_BYTES]

    def seal(self, listing: Listing, page: Page[T]) -> Page[T]:
        """``page`` with its position replaced by a cursor for ``listing`` (None stays None)."""
        if page.cursor is None:
            return page
        position = page.cursor.encode()
        return replace(page, cursor=f"{_b64(position)}.{_b64(self._mac(listing, position))}")

    def open(self, listing: Listing, cursor: str | None) -> str | None:
        """The position inside ``cursor`` (None for no cursor); InvalidInputError unless this
        seal issued it for exactly ``listing``."""
        if cursor is None or cursor == "":
            return None
        payload, dot, mac = cursor.partition(".")
        if len(cursor) > MAX_CURSOR_CHARS or not dot or not payload or not mac:
            raise InvalidInputError(REFUSED)
        try:
            position, given = _unb64(payload), _unb64(mac)
        except (binascii.Error, ValueError):
            raise InvalidInputError(REFUSED) from None
        # base64 decoding ignores some changes (stray characters, padding bits): only the
        # canonical text of both parts is the cursor that was issued.
        if (_b64(position), _b64(given)) != (payload, mac):
            raise InvalidInputError(REFUSED)
        if not hmac.compare_digest(given, self._mac(listing, position)):
            raise InvalidInputError(REFUSED)
        try:
            return position.decode()
        except UnicodeDecodeError:
            raise InvalidInputError(REFUSED) from None

    def page(self, listing: Listing, cursor: str | None, read: Callable[[str | None], Page[T]]) -> Page[T]:
        """One page of ``listing``: ``cursor`` opened (InvalidInputError unless issued for this
        listing), ``read`` called with the position inside it, and the next position sealed."""
        return self.seal(listing, read(self.open(listing, cursor)))
