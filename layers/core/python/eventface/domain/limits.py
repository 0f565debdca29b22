"""What the platform accepts as input: bounded JSON, dates in a sane range, numbers in range,
and one printable-text rule for every name (stdlib only, no I/O).

Every value that comes in is checked against a bound the code can use, so nothing that was
accepted can later fail (a date too far out to convert to UTC, a cooldown too long to add to
now, JSON nested deep enough to exhaust the parser's recursion). Each check raises
``InvalidInputError`` naming the field and the range.
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, datetime
from typing import Any, Final

from eventface.domain.errors import InvalidInputError

#: Deepest nesting of arrays and objects a JSON document may have (ours need 3).
MAX_JSON_DEPTH: Final = 32
#: Most arrays and objects one JSON document may hold (ours need a handful; a body of 8 MB of
#: ``[],`` would otherwise become millions of Python lists).
MAX_JSON_CONTAINERS: Final = 1000
#: Longest integer literal accepted (a 64-bit integer has 19 digits; no field needs more).
MAX_INT_DIGITS: Final = 19
#: Every date the platform stores or filters on lies in [EARLIEST, LATEST).
EARLIEST: Final = datetime(2000, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(2100, 1, 1, tzinfo=UTC)

# A JSON string: quote, then runs of plain characters or escapes (unrolled: no backtracking).
_STRING: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS: Final = re.compile(r"[\[\]{}]")
#: Unicode categories that never belong in a name: controls (NUL, newline, tab), formats (the
#: right-to-left override, zero-width characters, BOM), surrogates, private use, unassigned, and
#: line and paragraph separators. Spaces (Zs, e.g. the ideographic space of Japanese names) are
#: allowed.
_UNPRINTABLE: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _refuse_constant(name: str) -> None:
    raise InvalidInputError(f"{name} is not a JSON number: send finite numbers only")


def _bounded_int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INT_DIGITS:
        raise InvalidInputError(
            f"a {len(literal.lstrip('-'))}-digit integer is too large: numbers have at most "
            f"{MAX_INT_DIGITS} digits"
        )
    return int(literal)


def check_json_structure(text: str, *, what: str = "the document", max_depth: int = MAX_JSON_DEPTH) -> None:
    """Refuse JSON text nested deeper than ``max_depth`` or holding more than
    :data:`MAX_JSON_CONTAINERS` arrays and objects, before any of it is parsed.

    Brackets inside strings do not count. Exact for valid JSON; for invalid JSON it sees at least
    the nesting the parser would reach before failing. The work is one pass of ``re`` over the
    text and at most ``2 * MAX_JSON_CONTAINERS`` steps in Python.

    Raises
    ------
    InvalidInputError
        ``JSON nested deeper than 32 levels``, or too many arrays and objects.
    """
    structure = _STRING.sub('""', text)
    depth = opens = 0
    for match in _BRACKETS.finditer(structure):
        if match.group() in "[{":
            depth += 1
            opens += 1
            if depth > max_depth:
                raise InvalidInputError(
                    f"JSON nested deeper than {max_depth} levels ({what}): send a flatter document"
                )
            if opens > MAX_JSON_CONTAINERS:
                raise InvalidInputError(
                    f"JSON holds more than {MAX_JSON_CONTAINERS} arrays and objects ({what}): "
                    "send only the fields the route documents"
                )
        else:
            depth -= 1


def parse_json(data: bytes | str, *, what: str = "the request body", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse untrusted JSON with bounded depth and container count, UTF-8 only, integers of at
    most 19 digits, no NaN/Infinity.

    Raises
    ------
    InvalidInputError
        Not UTF-8, not JSON, nested deeper than ``max_depth``, too many containers, a huge
        integer, or a ``NaN``/``Infinity`` literal.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
    except UnicodeDecodeError:
        raise InvalidInputError(f"{what} is not UTF-8 text: send JSON encoded as UTF-8") from None
    check_json_structure(text, what=what, max_depth=max_depth)
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_int=_bounded_int)
    except ValueError:
        raise InvalidInputError(f"{what} is not valid JSON: send a JSON object") from None


def check_instant(name: str, value: datetime) -> datetime:
    """``value`` if it is timezone-aware and in [2000-01-01, 2100-01-01) UTC, else raise.

    Dates outside that range (year 1 at +14:00, year 9999 at -14:00) cannot be converted to UTC
    or have a duration added to them; none is a real campaign or filter.
    """
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{name} must include a timezone (e.g. 2026-05-01T09:00:00Z)")
    # A UTC offset is less than a day, so a local year within one of the range converts to UTC
    # without overflow; the exact bounds are then checked in UTC.
    near = EARLIEST.year - 1 <= value.year <= LATEST.year
    if not near or not EARLIEST <= value.astimezone(UTC) < LATEST:
        raise InvalidInputError(
            f"{name} {value.isoformat()} is out of range: use a date from "
            f"{EARLIEST.date().isoformat()} to before {LATEST.date().isoformat()} (UTC)"
        )
    return value


def check_range(name: str, value: int, minimum: int, maximum: int, unit: str = "") -> int:
    """``value`` if ``minimum <= value <= maximum`` (an int, not a bool), else InvalidInputError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} must be an integer from {minimum} to {maximum}{unit}")
    if not minimum <= value <= maximum:
        shown = str(value) if abs(value) < 10**15 else f"a {len(str(abs(value)))}-digit number"
        raise InvalidInputError(f"{name} must be from {minimum} to {maximum}{unit}, got {shown}")
    return value


def clamp(value: int, minimum: int, maximum: int) -> int:
    """``value`` held within [minimum, maximum] (for values read back that predate a bound)."""
    return min(max(value, minimum), maximum)


def printable(value: str, *, multiline: bool = False) -> bool:
    """True if every character can be shown as it is: no control or format character (NUL,
    right-to-left override, zero-width), no line break unless ``multiline`` (then ``\\n`` only)."""
    return all((multiline and ch == "\n") or unicodedata.category(ch) not in _UNPRINTABLE for ch in value)


def check_name(kind: str, value: object, limit: int, *, required: bool = True) -> str:
    """A name: trimmed, one line of at most ``limit`` printable characters (1+ when required).

    The one rule for every name a person gives: campaigns, checkpoints, venues, members,
    devices, API keys, staff devices, nicknames.
    """
    return _checked(kind, value, limit, required=required, multiline=False)


def check_text(kind: str, value: object, limit: int, *, required: bool = True) -> str:
    """A free text (notes, reward and push texts): like :func:`check_name` but line breaks allowed."""
    return _checked(kind, value, limit, required=required, multiline=True)


def _checked(kind: str, value: object, limit: int, *, required: bool, multiline: bool) -> str:
    text = value.strip() if isinstance(value, str) else ""
    need = "1" if required else "0"
    lines = "" if multiline else " on one line"
    if not isinstance(value, str) or (required and not text) or len(text) > limit:
        raise InvalidInputError(f"{kind} must be {need}-{limit} printable characters{lines}")
    # The whole value, not the trimmed one: "Rally\n" would otherwise pass and be stored as sent.
    if not printable(value, multiline=multiline):
        bad = next(ch for ch in value if not printable(ch, multiline=multiline))
        raise InvalidInputError(
            f"{kind} must be {need}-{limit} printable characters{lines}: it contains "
            f"U+{ord(bad):04X} ({unicodedata.name(bad, 'a control character').lower()}), "
            "which cannot be shown; remove it"
        )
    return text
